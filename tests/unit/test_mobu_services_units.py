"""Service discovery documents, SIA parameter sets, the sandbox's image table and spawn form."""

from __future__ import annotations

import random

import pytest

from library import repertoire
from library.errors import UserError

# lsst-sqre/mobu tests/data/discovery.json (commit 95fe2567bf681dce7accfa885b40c0e9dccd8981),
# unchanged: the document mobu's own tests discover services from.
MOBU_DISCOVERY = {
    "applications": ["some_application", "some_other_application"],
    "datasets": {
        "dp02": {
            "services": {
                "sia": {
                    "url": "https://data.example.com/api/sia/dp02",
                    "openapi": "https://data.example.com/api/sia/openapi.json",
                    "versions": {
                        "sia-query-2.0": {
                            "url": "https://data.example.com/api/sia/dp02/query",
                            "ivoa_standard_id": "ivo://ivoa.net/std/SIA#query-2.0",
                        }
                    },
                },
                "tap": {"url": "https://data.example.com/api/tap"},
            }
        }
    },
    "environment_name": "example.com",
    "services": {
        "internal": {
            "gafaelfawr": {
                "url": "https://data.example.com/auth/api",
                "versions": {"v1": {"url": "https://data.example.com/auth/api/v1"}},
            },
            "muster": {"url": "https://data.example.com/muster"},
        },
        "ui": {"nublado": {"url": "https://nb.data.example.org/nb"}},
    },
}


def test_mobus_discovery_document_reads_as_repertoires_client_reads_it():
    doc = repertoire.parse(MOBU_DISCOVERY, "mobu")
    assert doc.url_for_data("tap", "dp02") == "https://data.example.com/api/tap"
    assert doc.url_for_data("sia", "dp02") == "https://data.example.com/api/sia/dp02"
    assert (
        doc.url_for_data("sia", "dp02", version="sia-query-2.0")
        == "https://data.example.com/api/sia/dp02/query"
    )
    assert doc.url_for_data("sia", "dp02", version="nope") is None
    assert doc.url_for_data("tap", "dp1") is None
    assert doc.url_for_internal("muster") == "https://data.example.com/muster"
    assert (
        doc.url_for_internal("gafaelfawr", version="v1") == "https://data.example.com/auth/api/v1"
    )
    assert doc.url_for_ui("nublado") == "https://nb.data.example.org/nb"
    assert doc.applications == ["some_application", "some_other_application"]


def test_a_document_that_is_not_one_is_named_in_one_line():
    with pytest.raises(UserError) as info:
        repertoire.parse({"datasets": {"dp02": {"services": {"tap": {}}}}}, "http://x/discovery")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("service discovery document http://x/discovery: ")
    assert "datasets.dp02.services.tap.url" in message


def test_where_a_service_url_comes_from():
    doc = repertoire.parse(MOBU_DISCOVERY, "mobu")
    given = "https://mine.example/tap"
    # A URL the user gave wins for every dataset, even one discovery does not know.
    assert (
        repertoire.service_url("tap", "dp03", given_url=given, given_by_user=True, discovery=doc)
        == given
    )
    # Otherwise discovery decides by dataset, also over the sandbox's own URL.
    assert (
        repertoire.service_url("tap", "dp02", given_url=given, given_by_user=False, discovery=doc)
        == "https://data.example.com/api/tap"
    )
    with pytest.raises(UserError, match=r"dataset 'dp1': no SIA service .*SIA: dp02\)"):
        repertoire.service_url("sia", "dp1", given_url=None, given_by_user=False, discovery=doc)
    # No document: the platform's (the sandbox's) URL; nothing at all: how to give one.
    assert (
        repertoire.service_url("tap", "dp02", given_url=given, given_by_user=False, discovery=None)
        == given
    )
    with pytest.raises(UserError, match="--sia-url URL or --discovery-url URL"):
        repertoire.service_url("sia", "dp02", given_url=None, given_by_user=False, discovery=None)


def test_the_sandbox_document_lists_its_services_under_phalanx_dataset_names():
    from library.sandbox import discovery

    data = discovery.document(
        hub_url="http://127.0.0.1:1/",
        tap_url="http://127.0.0.1:2/tap",
        sia_url="http://127.0.0.1:2/sandbox/q/sia",
        lfs_url="http://127.0.0.1:3",
    )
    doc = repertoire.parse(data, "sandbox")
    for dataset in ("sandbox", "dp02", "dp1"):
        assert doc.url_for_data("tap", dataset) == "http://127.0.0.1:2/tap"
        assert doc.url_for_data("sia", dataset) == "http://127.0.0.1:2/sandbox/q/sia"
    assert doc.url_for_internal("giftless") == "http://127.0.0.1:3"
    assert doc.url_for_ui("nublado") == "http://127.0.0.1:1/"
    no_tap = discovery.document(hub_url=None, tap_url=None, sia_url=None, lfs_url=None)
    assert repertoire.parse(no_tap, "sandbox").datasets == {}


# --- SIA parameter sets --------------------------------------------------------------------


def test_mobus_dp02_set_loads_with_its_values():
    from library.sia.params import load

    dp02 = load("dp02")
    assert dp02.params["min_ra"] == 52.0 and dp02.params["max_dec"] == -28.0
    assert dp02.params["start_time"] == 60550.31803461111


def test_queries_are_drawn_inside_the_field_the_set_describes():
    from library.sia.params import load

    dp02 = load("dp02")
    p = dp02.params
    rng = random.Random(1)
    for _ in range(500):
        q = dp02.draw(rng)
        assert p["min_ra"] <= q.ra <= p["max_ra"] and p["min_dec"] <= q.dec <= p["max_dec"]
        assert p["min_radius"] <= q.radius <= p["min_radius"] + p["radius_range"]
        assert q.time == (p["start_time"], p["end_time"])


def test_sets_are_found_on_the_search_path_and_refused_in_one_line(tmp_path, monkeypatch):
    from library.sia.params import PATH_ENV, load

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "params.yaml").write_text("min_ra: 10\nmax_ra: 12\n")
    monkeypatch.setenv(PATH_ENV, str(tmp_path))
    mine = load("mine")
    assert mine.params["min_ra"] == 10.0 and mine.params["min_dec"] == -42.0  # mobu's default
    with pytest.raises(UserError, match=r"SIA query_set 'dp2': no dp2/params.yaml in "):
        load("dp2")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "params.yaml").write_text("min_ra: 10\nmax_raa: 12\n")
    with pytest.raises(UserError, match=r"params.yaml: unknown key 'max_raa'"):
        load("bad")
    (tmp_path / "bad" / "params.yaml").write_text("min_ra: 20\nmax_ra: 12\n")
    with pytest.raises(UserError, match=r"min_ra \(20.0\) is above max_ra"):
        load("bad")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "params.yaml").symlink_to(tmp_path / "mine" / "params.yaml")
    with pytest.raises(UserError, match=r"linked/params.yaml: a link to .*, outside the query set"):
        load("linked")


# --- the sandbox's images and spawn form ---------------------------------------------------


def test_image_rows_are_seeded_and_one_visit_sits_in_mobus_dp02_window():
    from library.sandbox import images

    rows = images.rows(n_visits=5)
    assert rows == images.rows(n_visits=5)
    assert len(rows) == 5 * images.DETECTOR_GRID**2
    assert set(rows[0]) == set(images.COLUMNS)
    first = [r for r in rows if r["obs_id"].startswith("0000-")]
    assert all(r["t_min"] == images.MOBU_DP02_TIME_MJD for r in first)
    assert all(r["s_region"].startswith("{(") and r["s_region"].endswith(")}") for r in rows)
    assert images.sia_url("http://127.0.0.1:8703/tap") == "http://127.0.0.1:8703/sandbox/q/sia"


def _form(**fields):
    from library.sandbox import spawn_form

    return spawn_form.options_from_form({k: [v] for k, v in fields.items()})


def test_the_spawn_form_takes_what_mobu_posts():
    # rubin.nublado.client's to_spawn_form() for each image kind.
    assert _form(image_class="latest-weekly", size="Small") == {
        "image": "sandbox/lab:w_2025_01",
        "image_class": "latest-weekly",
        "size": "Small",
    }
    assert _form(image_list="sandbox/lab:r29_0_0", size="Large")["image"] == "sandbox/lab:r29_0_0"
    by_tag = _form(image_tag="w_2024_50", size="Medium", enable_debug="true")
    assert by_tag == {
        "image": "sandbox/lab:w_2024_50",
        "image_class": "tag",
        "size": "Medium",
        "debug": True,
    }
    assert _form()["size"] == "Large"  # mobu's default size when none is posted


def test_the_spawn_form_refuses_what_it_does_not_offer():
    from library.sandbox.spawn_form import FormRefused

    for fields, message in (
        ({"image_class": "recommended", "size": "Huge"}, "unknown size 'Huge'"),
        ({"image_tag": "w_1999_01"}, "unknown image_tag 'w_1999_01'"),
        ({"image_list": "docker.io/other:latest"}, "unknown image_list"),
        ({"image_class": "by-tag"}, "unknown image_class 'by-tag'"),
    ):
        with pytest.raises(FormRefused, match=message):
            _form(**fields)


def test_the_lab_environment_shows_the_choice():
    from library.sandbox.spawn_form import lab_env

    env = lab_env(
        {"image": "sandbox/lab:r29_0_0", "image_class": "latest-release", "size": "Small"}
    )
    assert env == {
        "JUPYTER_IMAGE_SPEC": "sandbox/lab:r29_0_0",
        "IMAGE_DESCRIPTION": "Release r29.0.0",
        "BOSUN_LAB_SIZE": "Small",
        "BOSUN_LAB_IMAGE_CLASS": "latest-release",
    }


# --- the sandbox's Git LFS server (giftless, in-process) -----------------------------------


def test_lfs_doors_read_anonymously_and_write_only_with_a_token(tmp_path):
    """The download action's signed URL works (giftless signs the identity as the JWT subject,
    which PyJWT >= 2.10 wants a string); the read-write door wants a token; no hub is asked
    here (no token is sent), so its URL is a closed port."""
    import hashlib

    from werkzeug.test import Client

    from library.sandbox import lfs

    client = Client(lfs.make_app(tmp_path, "http://127.0.0.1:9/hub/api", jwt_key="k" * 32))
    data = b"a stored object"
    oid = hashlib.sha256(data).hexdigest()
    (tmp_path / "bosun" / "repo").mkdir(parents=True)
    (tmp_path / "bosun" / "repo" / oid).write_bytes(data)
    batch = {"transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}
    headers = {"Accept": "application/vnd.git-lfs+json"}

    down = client.post(
        "/ro/bosun/repo/objects/batch", json={**batch, "operation": "download"}, headers=headers
    )
    assert down.status_code == 200
    href = down.get_json()["objects"][0]["actions"]["download"]["href"]
    path = href.split("localhost", 1)[1]
    assert path.startswith("/ro/bosun/repo/objects/storage/")
    fetched = client.get(path)
    assert fetched.status_code == 200 and fetched.get_data() == data

    up = client.post(
        "/ro/bosun/repo/objects/batch", json={**batch, "operation": "upload"}, headers=headers
    )
    assert up.status_code == 403
    anonymous_write = client.post(
        "/rw/bosun/repo/objects/batch", json={**batch, "operation": "upload"}, headers=headers
    )
    assert anonymous_write.status_code == 401
    assert lfs.repo_urls("http://h:1/") == {
        "lfs_read_url": "http://h:1/ro/bosun/lfs-check",
        "lfs_write_url": "http://h:1/rw/bosun/lfs-check",
    }


# --- GitLFS's git -----------------------------------------------------------------------------


def test_gitlfs_read_url_stays_one_value_in_lfsconfig(tmp_path, monkeypatch):
    """A flock's lfs_read_url is written by git (quoted), so a newline cannot add a setting;
    git's repository-locating variables (set inside a git hook) are not passed on."""
    import asyncio
    import subprocess
    from types import SimpleNamespace

    from library.flock.businesses.gitlfs import GITCONFIG, Git, GitLFS

    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_TRACE2_EVENT_NESTING", "2")
    config = tmp_path / "gitconfig"
    config.write_text(GITCONFIG)
    env = Git(tmp_path, config).env()
    assert "GIT_DIR" not in env and env["GIT_TRACE2_EVENT_NESTING"] == "2"

    url = "http://127.0.0.1:1/x\n[core]\n\tfsmonitor = touch pwned"
    business = SimpleNamespace(options=SimpleNamespace(lfs_read_url=url))
    asyncio.run(GitLFS._create_origin(business, tmp_path, config))
    listed = subprocess.run(
        ["git", "config", "--file", str(tmp_path / "origin" / ".lfsconfig"), "--list", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listed.split("\0")[:-1] == [f"lfs.url\n{url}"]


def test_a_cancelled_git_takes_the_helpers_it_started_with_it(tmp_path):
    """git runs helpers (git-lfs, git-remote-http) as its children: when a monkey is cancelled
    mid-command, they must stop too, not go on writing into a scratch directory being removed.
    A git alias starting a shell loop stands in for such a helper."""
    import asyncio
    import time

    from library.flock.businesses.gitlfs import GITCONFIG, Git

    config = tmp_path / "gitconfig"
    out = tmp_path / "helper-output"
    config.write_text(
        GITCONFIG + f'[alias]\n\tspin = "!while :; do echo x >> {out}; sleep 0.02; done"\n'
    )

    async def cancel_midway() -> None:
        task = asyncio.create_task(Git(tmp_path, config)("spin"))
        await asyncio.sleep(0.5)
        task.cancel()
        # Bounded: asyncio waits for git's pipes to close, which a surviving helper holds open
        # (the monkey that "did not stop within 15 s" at the end of a run).
        done, _ = await asyncio.wait([task], timeout=5)
        assert done, "the cancelled git did not return: its helper holds its pipes"
        with pytest.raises(asyncio.CancelledError):
            task.result()

    asyncio.run(cancel_midway())
    assert out.stat().st_size > 0, "the helper ran"
    size = out.stat().st_size
    time.sleep(0.3)
    assert out.stat().st_size == size, "the helper went on after git was cancelled"
