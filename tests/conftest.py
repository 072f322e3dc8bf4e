"""Shared test helpers: a clean artifact dir per test and the repo's entry points."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def artifact_dir(tmp_path, monkeypatch):
    """A fresh ARTIFACT_DIR for the test, made current for library.env."""
    from library import env

    path = tmp_path / "artifacts"
    path.mkdir()
    monkeypatch.setenv("ARTIFACT_DIR", str(path))
    with env.using_artifact_dir(path):
        yield path


def run_cli(*args, env=None, cwd=REPO, timeout=120, input=None):
    """Run an entry point (./run_toolbox.py, ci/run) as a user would, in a subprocess."""
    full_env = {**os.environ, "CI": "true", **(env or {})}
    full_env.pop("BOSUN_DEBUG", None)
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=full_env,
        text=True,
        capture_output=True,
        timeout=timeout,
        input=input,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]
