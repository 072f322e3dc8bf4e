"""The notebook projects end to end through ci/run: notebook_ci on a git change, rsp_checks
against the sandbox (lab, Python loop, the shipped notebooks in the lab, no lab left behind)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.integration.notebook_repos import change_repo as make_change_repo
from tests.integration.notebook_repos import git

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _ci_run(art: Path, *args: str, env: dict | None = None, timeout: float = 900):
    full_env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art), **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "ci" / "run"), *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def change_repo(tmp_path) -> Path:
    """main: one broken notebook nobody touches; branch `change`: a good and a bad notebook."""
    return make_change_repo(
        tmp_path / "nbrepo", unchanged="old_broken.ipynb", bad="analysis/bad.ipynb"
    )


def _cases(junit: Path) -> dict[str, ET.Element]:
    suite = ET.parse(junit).getroot()
    return {c.get("name"): c for c in suite.iter("testcase")}


def _check_notebook_ci_run(art: Path, proc) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "analysis/bad.ipynb cell 3: AssertionError: x is not two" in proc.stdout
    cases = _cases(art / "junit.xml")
    notebook_cases = {n: c for n, c in cases.items() if n.endswith((" run", " clean"))}
    assert set(notebook_cases) == {
        "good.ipynb run",
        "good.ipynb clean",
        "analysis/bad.ipynb run",
        "analysis/bad.ipynb clean",
    }
    assert cases["good.ipynb run"].find("failure") is None
    assert cases["good.ipynb clean"].find("failure") is None
    failure = cases["analysis/bad.ipynb run"].find("failure")
    assert failure is not None
    assert failure.get("message") == "analysis/bad.ipynb cell 3: AssertionError: x is not two"
    assert "x is not two" in failure.text
    # The broken notebook the change does not touch is neither run nor reported.
    assert not any("old_broken" in name for name in cases)
    (cmd,) = list(art.glob("*__test/*__notebook__ci"))
    assert json.loads((cmd / "changed.json").read_text()) == ["analysis/bad.ipynb", "good.ipynb"]
    executed = sorted(
        p.relative_to(cmd / "executed").as_posix() for p in (cmd / "executed").rglob("*.ipynb")
    )
    assert executed == ["analysis/bad.ipynb", "good.ipynb"]
    run_json = json.loads((art / "run.json").read_text())
    assert run_json["result"] == "failure" and run_json["exit_code"] == 1


def test_notebook_ci_local_checkout(tmp_path, change_repo):
    art = tmp_path / "art"
    proc = _ci_run(
        art,
        "notebook_ci",
        "test",
        "--preset",
        "local",
        "--var",
        f"tests.notebook_ci.repo: {change_repo}",
    )
    _check_notebook_ci_run(art, proc)
    assert git(change_repo, "status", "--porcelain") == ""  # the checkout is left as it was


def test_notebook_ci_git_url_and_branch(tmp_path, change_repo):
    git(change_repo, "checkout", "-q", "main")  # the clone must check the branch out itself
    art = tmp_path / "art"
    proc = _ci_run(
        art,
        "notebook_ci",
        "ci",
        "--preset",
        "pr",
        "--var",
        f"tests.notebook_ci.repo: file://{change_repo}",
        "--var",
        "tests.notebook_ci.head_ref: change",
    )
    _check_notebook_ci_run(art, proc)


def test_notebook_ci_without_a_repo_is_one_line(tmp_path):
    proc = _ci_run(tmp_path / "art", "notebook_ci", "test")
    assert proc.returncode == 1
    assert "tests.notebook_ci.repo is not set" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not list((tmp_path / "art").rglob("FAILURE"))  # a user error, not a bug


# ---------------------------------------------------------------------------- rsp_checks


def _servers(hub_api_url: str, token: str, user: str) -> dict[str, dict]:
    """The servers of one hub user (GET /hub/api/users/NAME; the user list is paginated)."""
    request = urllib.request.Request(
        f"{hub_api_url.rstrip('/')}/users/{user}", headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["servers"]


def test_rsp_checks_against_the_sandbox(tmp_path, sandbox):
    assert sandbox.tap_url, "rsp_checks needs the sandbox's TAP service"
    user = f"bot-rsp-it-{os.getpid()}"
    art = tmp_path / "art"
    proc = _ci_run(
        art,
        "rsp_checks",
        "ci",
        "--preset",
        "sandbox",
        "--var",
        f"tests.hub.bot_user: {user}",
        env={
            "BOSUN_HUB_URL": sandbox.hub_url,
            "BOSUN_TAP_URL": sandbox.tap_url,
            "BOSUN_TOKEN_FILE": str(sandbox.token_file),
        },
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    run_json = json.loads((art / "run.json").read_text())
    assert run_json["result"] == "success"
    assert [s["name"] for s in run_json["step_results"]] == [
        "cleanup",
        "prepare",
        "test",
        "cleanup",
    ]
    assert (art / "report" / "index.html").is_file()
    suite = ET.parse(art / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    names = {c.get("name") for c in suite.iter("testcase")}
    for command in (
        "nublado__spawn_lab",
        "nublado__python_loop",
        "notebook__run_repo",
        "nublado__delete_lab",
    ):
        assert any(n.endswith(command) for n in names), (command, sorted(names))

    (repo_dir,) = list(art.glob("*__test/*__notebook__run_repo"))
    outcomes = {o["notebook"]: o for o in json.loads((repo_dir / "notebooks.json").read_text())}
    assert set(outcomes) == {"nublado_python.ipynb", "tap_query.ipynb"}
    assert all(o["ok"] for o in outcomes.values())
    discovery = json.loads((repo_dir / "discovery.json").read_text())
    skipped = json.dumps(discovery["skipped"])
    assert "butler_query.ipynb" in skipped and "drafts/broken.ipynb" in skipped

    spawn = json.loads(next(art.glob("*__test/*__nublado__spawn_lab/result.json")).read_text())
    assert spawn["status"] == "success"
    loop = json.loads(next(art.glob("*__test/*__nublado__python_loop/result.json")).read_text())
    assert loop["status"] == "success" and loop["result"]["executions"] >= 1

    assert sandbox.token not in "".join(
        p.read_text(errors="replace")
        for p in art.rglob("*")
        if p.is_file() and p.suffix in (".txt", ".yaml", ".json", ".sh", ".log", ".xml", "")
    )
    # Every call of the run used this one bot user: it must have no server left (other users'
    # labs on a shared sandbox are not this run's to judge).
    servers = _servers(sandbox.hub_api_url, sandbox.token, user)
    assert servers == {}, servers


def test_rsp_checks_failed_check_leaves_no_lab(tmp_path, sandbox):
    user = f"bot-rsp-fail-{os.getpid()}"
    art = tmp_path / "art"
    proc = _ci_run(
        art,
        "rsp_checks",
        "test",
        "--preset",
        "sandbox",
        "--var",
        f"tests.hub.bot_user: {user}",
        "--var",
        "tests.python_loop.code: \"raise ValueError('deliberate')\"",
        env={"BOSUN_TAP_URL": sandbox.tap_url or ""},
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "test: FAILED" in proc.stdout and "ValueError: deliberate" in proc.stdout
    spawn = json.loads(next(art.glob("*__test/*__nublado__spawn_lab/result.json")).read_text())
    assert spawn["status"] == "success"  # the lab did run before the failing check
    assert not list(art.glob("*__test/*__notebook__run_repo"))  # stopped at the failure
    delete = json.loads(next(art.glob("*__test/*__nublado__delete_lab/result.json")).read_text())
    assert delete["status"] == "success" and delete["result"]["was_running"] is True
    assert _servers(sandbox.hub_api_url, sandbox.token, user) == {}
