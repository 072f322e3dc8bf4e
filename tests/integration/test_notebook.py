"""Notebooks run locally with papermill, in a sandbox lab, and as CI on a git change."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.integration.lab_fixtures import bot, endpoints
from tests.integration.notebook_repos import change_repo, git, write_notebook

pytestmark = pytest.mark.integration

RSP_NOTEBOOKS = Path(__file__).resolve().parents[2] / "projects" / "rsp_checks" / "notebooks"


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    from library import env

    monkeypatch.setenv("ARTIFACT_DIR", str(tmp_path / "artifacts"))
    with env.NextArtifactDir("nb"):
        yield env.artifact_dir()


def _only_dir(base: Path, suffix: str) -> Path:
    (found,) = [p for p in base.iterdir() if p.name.endswith(suffix)]
    return found


def test_local_run_injects_parameters_and_saves_the_executed_notebook(tmp_path, artifacts):
    from library import run

    nb = write_notebook(
        tmp_path / "p.ipynb",
        "n = 1\nname = 'x'",
        "assert n == 7 and name == 'seven', (n, name)\nprint(n * 2)",
        tag_first=True,
    )
    result = run.run_toolbox("notebook", "run", path=nb, parameters=["n=7", "name=seven"])
    assert result["ok"] and [c["cell"] for c in result["cells"]] == [2, 3]
    executed = nbformat.read(_only_dir(artifacts, "notebook__run") / "executed" / "p.ipynb", 4)
    assert any(o.get("text") == "14\n" for c in executed.cells for o in c.get("outputs", []))


def test_local_failure_names_notebook_cell_and_error(tmp_path, artifacts):
    from library import run
    from library.errors import UserError

    nb = write_notebook(tmp_path / "bad.ipynb", "x = 1", "raise KeyError('missing-key')")
    with pytest.raises(UserError, match=r"bad.ipynb cell 3: KeyError: 'missing-key'"):
        run.run_toolbox("notebook", "run", path=nb)
    cmd = _only_dir(artifacts, "notebook__run")
    assert "missing-key" in (cmd / "tracebacks.txt").read_text()


def test_repo_in_one_lab_with_discovery_and_respawn(request, tmp_path, artifacts, monkeypatch):
    from library import run
    from library.errors import UserError

    ep = endpoints(request)
    monkeypatch.setenv("BOSUN_HUB_URL", ep.hub_url)
    monkeypatch.setenv("BOSUN_TOKEN_FILE", str(ep.token_file))
    repo = tmp_path / "repo"
    # state is shared inside one kernel: the second notebook sees the first's variable
    write_notebook(repo / "a_first.ipynb", "shared = 41")
    write_notebook(repo / "b_second.ipynb", "assert shared == 41\nshared += 1")
    write_notebook(repo / "c_third.ipynb", "import os\nprint(os.getpid())")
    write_notebook(repo / "d_fail.ipynb", "x = 1", "1/0")
    write_notebook(repo / "e_after.ipynb", "print('still running')")
    write_notebook(repo / "butler_only.ipynb", "raise SystemExit('must be skipped')")
    write_notebook(repo / "drafts" / "wip.ipynb", "raise SystemExit('must be skipped')")
    # The SQR-080 file-name rule applies because the repository turns it on.
    (repo / "bosun.yaml").write_text("name_convention: true\n")
    user = bot("repo")
    with pytest.raises(
        UserError,
        match=r"1 of 5 notebooks failed: d_fail.ipynb cell 3: "
        r"ZeroDivisionError",
    ):
        run.run_toolbox(
            "notebook",
            "run_repo",
            source=str(repo),
            where="lab",
            user=user,
            exclude_dir=["drafts"],
            services="nublado",
            max_executions=3,
            timeout=60,
        )
    cmd = _only_dir(artifacts, "notebook__run_repo")
    discovery = json.loads((cmd / "discovery.json").read_text())
    assert discovery["skipped"] == {
        "butler_only.ipynb": (
            "file-name convention (SQR-080, turned on by bosun.yaml): needs butler, not deployed"
        ),
        "drafts/wip.ipynb": "exclude_dirs (options): matches 'drafts/**'",
    }
    outcomes = {o["notebook"]: o for o in json.loads((cmd / "notebooks.json").read_text())}
    assert [n for n, o in outcomes.items() if o["ok"]] == [
        "a_first.ipynb",
        "b_second.ipynb",
        "c_third.ipynb",
        "e_after.ipynb",
    ]
    assert outcomes["d_fail.ipynb"]["cell"] == 3
    assert "ZeroDivisionError" in (cmd / "tracebacks.txt").read_text()
    # the lab was deleted at the end
    assert run.run_toolbox("nublado", "lab_status", user=user)["state"] == "absent"
    import pyarrow.parquet as pq

    events = pq.read_table(cmd / "events").to_pylist()
    ops = [e["operation"] for e in events]
    assert ops.count("notebook") == 5 and ops.count("spawn_lab") == 2  # respawn after 3
    assert ops.count("delete_lab") == 2
    assert {"d_fail.ipynb#cell-3"} == {
        e["target"] for e in events if not e["success"] and e["operation"] == "cell"
    }


def test_shipped_rsp_notebooks_locally(artifacts):
    from library import run

    result = run.run_toolbox(
        "notebook",
        "run_repo",
        source=str(RSP_NOTEBOOKS),
        exclude_dir=["drafts"],
        services="nublado",
    )
    assert result["notebooks"] == 1 and result["failed"] == 0
    assert result["skipped"] == 3  # tap (not deployed here), butler, the draft


def test_notebook_ci_on_a_change_with_a_good_and_a_bad_notebook(tmp_path, artifacts):
    from library import run
    from library.errors import UserError

    repo = change_repo(tmp_path / "nbrepo", unchanged="untouched.ipynb", bad="sub/bad.ipynb")
    with pytest.raises(
        UserError,
        match=r"1 problem\(s\) in 2 changed notebook\(s\): "
        r"sub/bad.ipynb cell 3: AssertionError",
    ):
        run.run_toolbox("notebook", "ci", repo=repo, base_ref="main")
    cmd = _only_dir(artifacts, "notebook__ci")
    assert json.loads((cmd / "changed.json").read_text()) == ["good.ipynb", "sub/bad.ipynb"]
    import xml.etree.ElementTree as ET

    suite = ET.parse(cmd / "junit.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {
        "good.ipynb run",
        "good.ipynb clean",
        "sub/bad.ipynb run",
        "sub/bad.ipynb clean",
    }
    assert cases["sub/bad.ipynb run"].find("failure") is not None
    assert cases["good.ipynb run"].find("failure") is None
    assert suite.get("failures") == "1"
    assert git(repo, "status", "--porcelain") == ""  # CI ran copies, left the checkout clean


def test_notebook_ci_in_a_lab(request, tmp_path, artifacts, monkeypatch):
    """Notebooks as CI on the platform: the changed notebooks run in a bot user's lab."""
    from library import run
    from library.errors import UserError

    ep = endpoints(request)
    monkeypatch.setenv("BOSUN_HUB_URL", ep.hub_url)
    monkeypatch.setenv("BOSUN_TOKEN_FILE", str(ep.token_file))
    user = bot("nbci")
    repo = change_repo(tmp_path / "nbrepo", unchanged="untouched.ipynb", bad="sub/bad.ipynb")
    with pytest.raises(UserError, match=r"sub/bad.ipynb cell 3: AssertionError"):
        run.run_toolbox("notebook", "ci", repo=repo, base_ref="main", where="lab", user=user)
    cmd = _only_dir(artifacts, "notebook__ci")
    import xml.etree.ElementTree as ET

    suite = ET.parse(cmd / "junit.xml").getroot().find("testsuite")
    failed = {c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None}
    assert failed == {"sub/bad.ipynb run"}
    import pyarrow.parquet as pq

    ops = [e["operation"] for e in pq.read_table(cmd / "events").to_pylist()]
    assert ops.count("spawn_lab") == 1 and ops.count("delete_lab") == 1
    assert ops.count("notebook") == 2
    assert run.run_toolbox("nublado", "lab_status", user=user)["state"] == "absent"


def test_notebook_ci_in_a_lab_needs_a_user(tmp_path, artifacts):
    from library import run
    from library.errors import UserError

    repo = change_repo(tmp_path / "nbrepo", unchanged="untouched.ipynb", bad="sub/bad.ipynb")
    with pytest.raises(UserError, match="--where lab needs --user"):
        run.run_toolbox("notebook", "ci", repo=repo, base_ref="main", where="lab")
