"""mobu's SIAQuerySetRunner, GitLFS and Muster businesses, lab images and sizes, and service
discovery by `dataset`, run by `scale run` against the sandbox's real services: DaCHS's SIA v2
service, a giftless Git LFS server with the git-lfs client, the hub's Nublado-shaped spawn
form and the sandbox's Repertoire-format discovery document. Muster alone is a local server
implementing its documented responses (tests/support/muster.py): it cannot be installed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml

from library.events import read_events

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def scale_run(tmp_path: Path, flocks: list[dict], duration: str, env: dict | None = None):
    """`scale run` of FLOCKS in a subprocess: (exit code, output, command dir)."""
    path = tmp_path / "flocks.yaml"
    path.write_text(yaml.safe_dump(flocks))
    artifacts = tmp_path / "artifacts"
    done = subprocess.run(
        [sys.executable, str(REPO / "run_toolbox.py"), "scale", "run", "--flocks", str(path)]
        + ["--duration", duration],
        cwd=REPO,
        env=dict(os.environ, ARTIFACT_DIR=str(artifacts), CI="1", **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    (out,) = artifacts.glob("*__scale__run")
    return done.returncode, done.stdout, out


def events(out: Path, operation: str | None = None) -> list[dict]:
    rows = read_events(out).to_pylist()
    return [r for r in rows if operation is None or r["operation"] == operation]


def flock(name: str, prefix: str, business: dict, count: int = 1, **extra) -> dict:
    return {
        "name": name,
        "count": count,
        "user_spec": {"username_prefix": prefix},
        "scopes": [],
        "business": business,
        **extra,
    }


@pytest.fixture(scope="module")
def services(sandbox):
    from library import sandbox as sb

    found = sb.status()["services"]
    assert found["running"], "sandbox up starts the discovery and Git LFS services"
    return found


@pytest.fixture
def discovery_doc(tmp_path, services):
    """A discovery document of our own (the sandbox's, edited), served on 127.0.0.1."""
    from library.sandbox.services import discovery_server

    with urllib.request.urlopen(services["discovery_url"] + "/discovery", timeout=10) as r:
        document = json.load(r)
    path = tmp_path / "discovery.json"
    servers = []

    def serve(edit) -> str:
        path.write_text(json.dumps(edit(json.loads(json.dumps(document)))))
        server = discovery_server(0, path)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


# --- service discovery ---------------------------------------------------------------------


def test_the_sandbox_publishes_its_services_as_repertoire_does(services, sandbox):
    from library import repertoire

    document = repertoire.fetch(services["discovery_url"])
    assert document.url_for_data("tap", "sandbox") == sandbox.tap_url
    sia = document.url_for_data("sia", "dp02")
    assert sia.endswith("/sandbox/q/sia")
    assert document.url_for_data("sia", "dp02", version="sia-query-2.0") == sia + "/siap2.xml"
    assert document.url_for_data("tap", "dp03") is None
    assert document.url_for_ui("nublado") == sandbox.hub_url
    assert document.url_for_internal("giftless") == services["lfs_url"]


def test_dataset_selects_the_tap_service_through_discovery(tmp_path, discovery_doc):
    """Dataset `elsewhere` names a TAP service on a closed port; `sandbox` the real one.

    Same flock options but the dataset: only the dataset's endpoint differs, so the failures of
    one and the successes of the other show that `dataset` chose the service."""

    def add_elsewhere(doc):
        doc["datasets"]["elsewhere"] = {"services": {"tap": {"url": "http://127.0.0.1:9/tap"}}}
        return doc

    url = discovery_doc(add_elsewhere)
    options = {"query_set": "bosun-sandbox", "idle_time": "300ms", "query_timeout": 10}
    code, output, out = scale_run(
        tmp_path,
        [
            flock(
                "here",
                "bot-dsgood",
                {"type": "TAPQuerySetRunner", "options": {**options, "dataset": "sandbox"}},
            ),
            flock(
                "there",
                "bot-dsbad",
                {"type": "TAPQuerySetRunner", "options": {**options, "dataset": "elsewhere"}},
            ),
        ],
        "4s",
        env={"BOSUN_DISCOVERY_URL": url, "BOSUN_TAP_URL": ""},
    )
    summary = json.loads((out / "summary.json").read_text())["flocks"]
    assert summary["here"]["successes"] >= 3 and summary["here"]["failures"] == 0, output
    assert summary["there"]["successes"] == 0 and summary["there"]["failures"] >= 1
    bad = [r for r in events(out, "tap_query") if r["monkey"].startswith("bot-dsbad")]
    assert bad and not any(r["success"] for r in bad)
    assert code == 1


def test_an_unknown_dataset_is_refused_naming_the_known_ones(tmp_path, services):
    code, output, out = scale_run(
        tmp_path,
        [
            flock(
                "sia",
                "bot-dsunknown",
                {
                    "type": "SIAQuerySetRunner",
                    "options": {"dataset": "dp03", "query_set": "bosun-sandbox"},
                },
            )
        ],
        "3s",
    )
    errors = [r["error"] for r in events(out, "monkey_error")]
    assert errors, output
    assert "dataset 'dp03'" in errors[0] and "dp02, dp1, sandbox" in errors[0]
    assert code == 1


# --- SIA ----------------------------------------------------------------------------------


def test_sia_flock_runs_searches_from_its_parameter_set(tmp_path, services):
    code, output, out = scale_run(
        tmp_path,
        [
            flock(
                "sia",
                "bot-siatest",
                {
                    "type": "SIAQuerySetRunner",
                    "restart": True,
                    "options": {
                        "dataset": "sandbox",
                        "query_set": "bosun-sandbox",
                        "idle_time": "200ms",
                    },
                },
                count=2,
            )
        ],
        "5s",
    )
    assert code == 0, output
    sia = json.loads((out / "summary.json").read_text())["flocks"]["sia"]
    assert sia["failures"] == 0 and sia["successes"] >= 6, output
    queries = events(out, "sia_query")
    assert all(r["success"] and r["rows"] >= 0 and r["target"] == "bosun-sandbox" for r in queries)
    # Paced by idle_time, each search records how late it started against the plan (a woken
    # sleep is never early, so some lag is above 0); unpaced businesses record 0.
    assert any(r["lag_us"] > 0 for r in queries), queries[:3]


def test_mobus_dp02_time_window_finds_the_visit_placed_in_it(sandbox):
    """mobu's dp02 set queries a 30-second window; the sandbox has one visit in it."""
    from library import platform
    from library.sandbox import images
    from library.sia.client import SiaClient
    from library.sia.params import SIAQuery, load

    dp02 = load("dp02")
    window = (dp02.params["start_time"], dp02.params["end_time"])
    client = SiaClient(platform.resolve().require("sia_url"), timeout=30)
    ra, dec = images.PINNED_POINTING
    whole = client.search(SIAQuery(ra, dec, 0.3, window))
    assert whole.success and whole.rows == 9, whole  # the visit's 3 x 3 detectors
    result = client.search(SIAQuery(ra, dec, 0.05, window))
    assert result.success and result.rows >= 1, result
    outside = client.search(SIAQuery(ra + 5, dec, 0.05, window))
    assert outside.success and outside.rows == 0


# --- Git LFS -------------------------------------------------------------------------------


def test_gitlfs_flock_pushes_then_clones_through_the_lfs_server(tmp_path, services):
    from library.sandbox import lfs

    urls = lfs.repo_urls(services["lfs_url"], repo="flock-test")
    code, output, out = scale_run(
        tmp_path,
        [
            flock(
                "lfs",
                "bot-lfstest",
                {"type": "GitLFS", "restart": True, "options": {**urls, "idle_time": "500ms"}},
            )
        ],
        "6s",
    )
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())["flocks"]["lfs"]
    assert summary["failures"] == 0 and summary["successes"] >= 1, output
    steps = {r["target"] for r in events(out, "git_lfs_step") if r["success"]}
    assert {"push LFS-tracked assets", "verify origin contents", "verify asset contents"} <= steps
    stored = REPO / ".sandbox" / "lfs" / "bosun" / "flock-test"
    if os.environ.get("BOSUN_SANDBOX_DIR"):
        stored = Path(os.environ["BOSUN_SANDBOX_DIR"]) / "lfs" / "bosun" / "flock-test"
    assert any(stored.iterdir()), "the pushed objects are in the server's storage"


def test_gitlfs_push_to_the_read_only_door_fails(tmp_path, services):
    from library.sandbox import lfs

    urls = lfs.repo_urls(services["lfs_url"], repo="flock-test")
    code, output, out = scale_run(
        tmp_path,
        [
            flock(
                "lfs",
                "bot-lfsro",
                {
                    "type": "GitLFS",
                    "options": {
                        "lfs_read_url": urls["lfs_read_url"],
                        "lfs_write_url": urls["lfs_read_url"],
                    },
                },
            )
        ],
        "4s",
    )
    push = [r for r in events(out, "git_lfs_step") if r["target"] == "push LFS-tracked assets"]
    assert push and not push[0]["success"], output
    assert code == 1


# --- Muster --------------------------------------------------------------------------------


def test_muster_flock_checks_ingress_and_auth(tmp_path, sandbox, discovery_doc):
    """Against tests/support/muster.py: Muster's documented responses, as no Muster server
    can be installed here; the sandbox hub plays Gafaelfawr (who owns a token)."""
    from tests.support.muster import FakeMuster

    identity = {"uid": 4101, "gid": 4102, "groups": [{"name": "g-muster", "id": 4200}]}
    muster = FakeMuster(sandbox.hub_api_url, {"bot-mustertest": identity}, quota_window_s=1.0)
    muster_url = muster.start()
    try:

        def add_muster(doc):
            doc["services"]["internal"]["muster"] = {"url": muster_url}
            return doc

        url = discovery_doc(add_muster)
        user = {
            "username": "bot-mustertest",
            "uidnumber": 4101,
            "gidnumber": 4102,
            "groups": [{"name": "g-muster", "id": 4200}],
        }
        code, output, out = scale_run(
            tmp_path,
            [
                {
                    "name": "muster",
                    "count": 1,
                    "users": [user],
                    "scopes": [],
                    "business": {
                        "type": "Muster",
                        "restart": True,
                        "options": {"idle_time": "1200ms"},
                    },
                }
            ],
            "4s",
            env={"BOSUN_DISCOVERY_URL": url},
        )
    finally:
        muster.stop()
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())["flocks"]["muster"]
    assert summary["failures"] == 0 and summary["successes"] >= 2, output
    steps = [r["target"] for r in events(out, "muster_step") if r["success"]]
    assert steps[:4] == ["anonymous", "auth", "quota", "delegated"]
    # The auth checks went out without a token and with a bogus scheme, the rest with a bearer.
    schemes = {(path, scheme) for path, scheme in muster.requests}
    assert ("/muster/auth/fail", "") in schemes and ("/muster/auth/fail", "Token") in schemes
    assert ("/muster/delegated/header", "Bearer") in schemes


def test_muster_reports_a_wrong_identity(tmp_path, sandbox, discovery_doc):
    from tests.support.muster import FakeMuster

    muster = FakeMuster(sandbox.hub_api_url, {"bot-musterwrong": {"uid": 1}})
    muster_url = muster.start()
    try:
        url = discovery_doc(
            lambda doc: {
                **doc,
                "services": {
                    **doc["services"],
                    "internal": {**doc["services"]["internal"], "muster": {"url": muster_url}},
                },
            }
        )
        user = {"username": "bot-musterwrong", "uidnumber": 2}
        code, output, out = scale_run(
            tmp_path,
            [
                {
                    "name": "muster",
                    "count": 1,
                    "users": [user],
                    "scopes": [],
                    "business": {"type": "Muster"},
                }
            ],
            "3s",
            env={"BOSUN_DISCOVERY_URL": url},
        )
    finally:
        muster.stop()
    failed = [r for r in events(out, "muster_step") if not r["success"]]
    assert failed and failed[0]["target"] == "delegated", output
    assert "Bad response from delegation" in failed[0]["error"]
    assert code == 1


# --- images and sizes ------------------------------------------------------------------------


def _image_check(image: str, size: str) -> str:
    # Fails the execution (and so the flock) unless the lab got exactly what was asked for.
    return (
        "import os; "
        f"assert os.environ['JUPYTER_IMAGE_SPEC'] == {image!r}, os.environ['JUPYTER_IMAGE_SPEC']; "
        f"assert os.environ['BOSUN_LAB_SIZE'] == {size!r}, os.environ['BOSUN_LAB_SIZE']"
    )


def test_image_and_size_reach_the_spawn_form(tmp_path, sandbox):
    def python(name, prefix, image, expect_image, expect_size):
        return flock(
            name,
            prefix,
            {
                "type": "NubladoPythonLoop",
                "options": {
                    "image": image,
                    "code": _image_check(expect_image, expect_size),
                    "max_executions": 2,
                    "execution_idle_time": "100ms",
                    "spawn_settle_time": 0,
                    "get_node": False,
                },
            },
        )

    code, output, out = scale_run(
        tmp_path,
        [
            python(
                "bytag",
                "bot-imgtag",
                {"image_class": "by-tag", "tag": "w_2024_50", "size": "Medium"},
                "sandbox/lab:w_2024_50",
                "Medium",
            ),
            python(
                "weekly",
                "bot-imgweekly",
                {"image_class": "latest-weekly", "size": "Small"},
                "sandbox/lab:w_2025_01",
                "Small",
            ),
            python(
                "byref",
                "bot-imgref",
                {"image_class": "by-reference", "reference": "sandbox/lab:r29_0_0"},
                "sandbox/lab:r29_0_0",
                "Large",
            ),
            python(
                "huge",
                "bot-imghuge",
                {"image_class": "recommended", "size": "Huge"},
                "sandbox/lab:recommended",
                "Huge",
            ),
        ],
        "25s",
    )
    summary = json.loads((out / "summary.json").read_text())["flocks"]
    for name in ("bytag", "weekly", "byref"):
        assert summary[name]["failures"] == 0 and summary[name]["successes"] >= 2, output
    # A size the form does not offer is refused: no lab with another size ever runs.
    assert summary["huge"]["successes"] == 0
    errors = [
        r["error"]
        for r in events(out)
        if r["monkey"].startswith("bot-imghuge") and not r["success"]
    ]
    assert any("unknown size 'Huge'" in e for e in errors), errors
    spawned = [r for r in events(out, "spawn_lab") if r["monkey"].startswith("bot-imghuge")]
    assert spawned and not any(r["success"] for r in spawned)
    assert code == 1
