"""Helpers shared by the test modules: the repo's entry points, run as a user would."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None, cwd=REPO, timeout=120, input=None):
    """Run an entry point (./run_toolbox.py, ci/run) in a subprocess, as CI would."""
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
