"""`notebook run --where local` against bare papermill, and a repo in one lab kernel.

Anchor: `papermill.execute_notebook` on the same notebook, in the same process and run.
"""

from __future__ import annotations

import statistics
import time
import uuid

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from tests.integration.lab_fixtures import endpoints

REPEAT = 5


def _notebook(path):
    cell = new_code_cell("n = 3")
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell("print(sum(range(n)))"), new_code_cell("n * 2")])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_run_local_vs_bare_papermill(tmp_path, monkeypatch):
    import papermill

    from library import env, run

    monkeypatch.setenv("ARTIFACT_DIR", str(tmp_path / "art"))
    nb = _notebook(tmp_path / "bench.ipynb")
    bare, ours = [], []
    with env.NextArtifactDir("bench"):
        for i in range(REPEAT):  # interleaved, so drift of the machine hits both alike
            t = time.perf_counter()
            papermill.execute_notebook(
                str(nb), str(tmp_path / f"out{i}.ipynb"), parameters={"n": 5}, progress_bar=False
            )
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            run.run_toolbox("notebook", "run", path=nb, parameters=["n=5"])
            ours.append(time.perf_counter() - t)
    b, o = statistics.median(bare), statistics.median(ours)
    print(
        f"\n[notebook run --where local] {o:.3f} s vs bare papermill {b:.3f} s: "
        f"{o / b:.2f}x (goal <= 1.1x), median of {REPEAT}"
    )


def test_repo_in_one_kernel_vs_separate_papermill_runs(request, tmp_path, monkeypatch):
    from library import env, run

    ep = endpoints(request)
    monkeypatch.setenv("ARTIFACT_DIR", str(tmp_path / "art"))
    monkeypatch.setenv("BOSUN_HUB_URL", ep.hub_url)
    monkeypatch.setenv("BOSUN_TOKEN_FILE", str(ep.token_file))
    repo = tmp_path / "repo"
    repo.mkdir()
    for i in range(10):
        _notebook(repo / f"nb{i:02}.ipynb")
    with env.NextArtifactDir("bench"):
        t = time.perf_counter()
        run.run_toolbox("notebook", "run_repo", source=str(repo), where="local")
        local = time.perf_counter() - t
        t = time.perf_counter()
        run.run_toolbox(
            "notebook",
            "run_repo",
            source=str(repo),
            where="lab",
            user=f"bot-bench-{uuid.uuid4().hex[:4]}",
            max_executions=10,
        )
        lab = time.perf_counter() - t
    print(
        f"\n[10 notebooks] one lab kernel (spawn + run + delete) {lab:.2f} s vs 10 separate "
        f"papermill runs {local:.2f} s: {lab / local:.2f}x"
    )
