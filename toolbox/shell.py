"""Shell commands recorded like any toolbox call (output kept in the artifact dir)."""

from __future__ import annotations

from library.toolbox import command


@command
def run(cmd: str, check: bool = True, timeout: float | None = None) -> dict:
    """Run a shell command; its output goes to run.log in the command's artifact dir.

    Args:
        cmd: The command line, run with bash.
        check: Fail when the command exits non-zero.
        timeout: Seconds before the command is stopped and counted as failed.
    """
    from library import run as runner

    proc = runner.run(cmd, capture_stdout=True, check=check, timeout=timeout)
    return {"returncode": proc.returncode, "stdout_lines": len((proc.stdout or "").splitlines())}


@command
def wait(seconds: float = 0.0) -> None:
    """Wait a number of seconds: a placeholder step, or a pause between steps.

    Args:
        seconds: How long to wait; 0 returns at once.
    """
    import time

    time.sleep(max(0.0, seconds))
