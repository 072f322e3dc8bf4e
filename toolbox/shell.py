"""Shell commands recorded like any toolbox call (output kept in the artifact dir)."""

from __future__ import annotations

import time
from typing import Any

from library import run as runner
from library.toolbox import command


@command
def run(cmd: str, check: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Run a shell command; its output goes to run.log in the command's artifact dir.

    A value taken from config, a trigger or a file must not be pasted into ``cmd``: use
    ``shell run_argv``, which runs a program without a shell.

    Args:
        cmd: The command line, run with bash.
        check: Fail when the command exits non-zero.
        timeout: Seconds before the command is stopped and counted as failed.
    """
    proc = runner.run(cmd, capture_stdout=True, check=check, timeout=timeout)
    return {"returncode": proc.returncode, "stdout_lines": len((proc.stdout or "").splitlines())}


@command
def run_argv(argv: list[str], check: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Run a program with a list of arguments, without a shell; output goes to run.log.

    Each argument reaches the program as it is, whatever characters it holds: the safe way to
    pass values from config or a trigger (``argv: [echo, "{{ tests.cleanup.message }}"]``).

    Args:
        argv: The program and its arguments (repeat ``--argv`` for each).
        check: Fail when the program exits non-zero.
        timeout: Seconds before the program is stopped and counted as failed.
    """
    proc = runner.run(argv, capture_stdout=True, check=check, timeout=timeout)
    return {"returncode": proc.returncode, "stdout_lines": len((proc.stdout or "").splitlines())}


@command
def wait(seconds: float = 0.0) -> None:
    """Wait a number of seconds: a placeholder step, or a pause between steps.

    Args:
        seconds: How long to wait; 0 returns at once.
    """
    time.sleep(max(0.0, seconds))
