"""`scale check`: the effective flocks of real files (tests/fixtures/mobu/), not run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from library.errors import UserError
from library.flock.check import check_file

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "mobu"
IDFINT = FIXTURES / "phalanx" / "values-idfint.yaml"


def _by_name(flocks):
    return {f["name"]: f for f in flocks}


def test_a_phalanx_values_file_as_it_would_run(monkeypatch):
    monkeypatch.delenv("BOSUN_QUERY_SET_PATH", raising=False)
    for name in (
        "BOSUN_HUB_URL",
        "BOSUN_SIA_URL",
        "BOSUN_DISCOVERY_URL",
        "BOSUN_SIA_QUERY_SET_PATH",
    ):
        monkeypatch.delenv(name, raising=False)
    flocks = _by_name(check_file(IDFINT, {"tap_url": "https://tap.example/tap"}))
    assert list(flocks) == ["phalanx-quotidian", "phalanx-recommended", "tutorial", "tap", "sia"]
    tutorial = flocks["tutorial"]
    assert tutorial["users"] == [{"username": "bot-mobu-tutorial"}]
    assert tutorial["token_scopes"] == ["exec:notebook", "exec:portal", "read:image", "read:tap"]
    assert tutorial["options"]["spawn_timeout"] == 610.0  # mobu's default, filled in
    assert tutorial["endpoint"]["spawn_form"] == {"image_class": "latest-daily", "size": "Large"}
    assert tutorial["options"]["cell_execution_timeout"] == 1000.0
    assert tutorial["runs_here"] is True
    tap = flocks["tap"]
    assert tap["endpoint"]["tap"] == "https://tap.example/tap"
    assert tap["endpoint"]["mode"] == "async"
    # mobu's dp0.2 is not bosun's: without a search path it is named as missing, not replaced.
    assert tap["runs_here"] is False
    assert "'dp0.2': not found" in tap["needs"]
    # mobu's dp02 SIA parameter set ships with bosun (library/sia/query_sets/dp02).
    assert flocks["sia"]["runs_here"] is True
    sia = flocks["sia"]["endpoint"]
    assert sia["sia"] == (
        "sia of dataset 'dp02' from service discovery (the sandbox's discovery document)"
    )
    assert sia["query_set"]["directory"].endswith("sia/query_sets/dp02")


def test_mobus_query_sets_found_on_the_search_path(monkeypatch):
    monkeypatch.setenv("BOSUN_QUERY_SET_PATH", str(FIXTURES))
    tap = _by_name(check_file(IDFINT))["tap"]
    assert tap["endpoint"]["query_set"]["directory"].endswith("tapquerysetrunner/dp0.2")
    assert tap["runs_here"] is True


def test_users_and_gids_as_mobu_makes_them():
    basic, python = check_file(FIXTURES / "mobu-tests-autostart.yaml")
    assert basic["users"][0] == {
        "username": "bot-mobu-testuser01",
        "uidnumber": 1000,
        "gidnumber": 2000,
    }
    assert [u["username"] for u in basic["users"]][-2:] == [
        "bot-mobu-testuser09",
        "bot-mobu-testuser10",
    ]
    assert python["users"][0] == {
        "username": "bot-mobu-python",
        "uidnumber": 60000,
        "gidnumber": 60000,
    }
    assert python["notices"][-1] == "ignored flock key(s) restart, as mobu ignores them"


def _cli(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "run_toolbox.py"), "scale", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_cli_prints_yaml_and_stops_on_the_first_invalid_flock():
    ok = _cli("--flocks", str(IDFINT))
    assert ok.returncode == 0, ok.stderr
    printed = yaml.safe_load(ok.stdout)
    assert [f["name"] for f in printed][:2] == ["phalanx-quotidian", "phalanx-recommended"]
    bad = _cli("--flocks", str(FIXTURES / "phalanx" / "values-ccin2p3.yaml"))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: {FIXTURES / 'phalanx' / 'values-ccin2p3.yaml'}: flock 'firefighter': "
        "business.options.repo_branch: not an option of NotebookRunnerCounting "
        "(mobu renamed it repo_ref)"
    ]


def test_an_invalid_file_is_refused(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("config:\n  autostart: {name: x}\n")
    with pytest.raises(UserError, match="expected a list of flocks"):
        check_file(path)


def test_a_large_flock_shows_its_first_and_last_users(tmp_path):
    path = tmp_path / "f.yaml"
    flock = {
        "name": "big",
        "count": 3000,
        "user_spec": {"username_prefix": "bot-mobu-big", "uid_start": 10000},
        "scopes": [],
        "business": {"type": "EmptyLoop"},
    }
    path.write_text(yaml.safe_dump([flock]))
    (big,) = check_file(path)
    assert big["users"][3] == "... 2995 more, bot-mobu-big0004 to bot-mobu-big2998 ..."
    assert big["users"][-1] == {
        "username": "bot-mobu-big3000",
        "uidnumber": 12999,
        "gidnumber": 12999,
    }
