"""Artifact dirs: NNN numbering is unique and gap-free across threads and processes."""

import concurrent.futures
import multiprocessing
import re
from pathlib import Path

from library import env


def _numbers(parent: Path) -> list[int]:
    return sorted(
        int(re.match(r"(\d+)__", p.name).group(1)) for p in parent.iterdir() if p.is_dir()
    )


def test_next_artifact_dir_nests_and_restores(artifact_dir):
    with env.NextArtifactDir("outer") as outer:
        assert outer == artifact_dir / "000__outer"
        assert outer == env.ARTIFACT_DIR
        with env.NextArtifactDir("inner") as inner:
            assert inner == outer / "000__inner"
        assert env.artifact_dir() == outer
    assert env.artifact_dir() == artifact_dir
    with env.NextArtifactDir("second") as second:
        assert second.name == "001__second"


def test_names_from_input_cannot_escape(artifact_dir):
    for bad in ("../../etc", "/abs/path", "a\x00b", "..", "x/../../y"):
        path = env.next_dir(bad)
        assert path.parent == artifact_dir
        assert ".." not in path.name and "/" not in path.name and "\x00" not in path.name


def test_threads_get_unique_gap_free_numbers(artifact_dir):
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda i: env.next_dir(f"t{i}", artifact_dir), range(32 * 50)))
    assert _numbers(artifact_dir) == list(range(32 * 50))


def _make_dirs(parent: str, count: int) -> None:
    for i in range(count):
        env.next_dir(f"p{i}", parent)


def test_processes_get_unique_gap_free_numbers(artifact_dir):
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_make_dirs, args=(str(artifact_dir), 100)) for _ in range(4)]
    for proc in procs:
        proc.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: env.next_dir(f"t{i}", artifact_dir), range(200)))
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert _numbers(artifact_dir) == list(range(600))


def test_default_artifact_dir_is_timestamped_and_exported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARTIFACT_DIR", raising=False)
    import contextvars

    path = contextvars.copy_context().run(env.artifact_dir)
    assert path.parent == tmp_path / "artifacts"
    assert re.fullmatch(r"\d{8}-\d{6}", path.name)
    import os

    assert os.environ["ARTIFACT_DIR"] == str(path)
