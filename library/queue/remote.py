"""A queued run on a Dask worker: the same ``ci/run`` process, started by the worker.

The executor submits `run_on_worker` with the run's argv, environment and artifact dir; the
worker starts the process in a session of its own, writes ``worker.json`` (host, pid) into the
dir, and returns the exit code. The artifact dir must be a path the worker reaches (a shared
filesystem, or a cluster on the same machine), and the checkout at the same path. A cancel,
a stopping executor or a recovery after a crash writes ``CANCEL`` into the run's dir: the
worker then ends the process group (SIGTERM, SIGKILL after the grace period).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

CANCEL = "CANCEL"
WORKER_INFO = "worker.json"


def request_cancel(run_dir: str | Path) -> None:
    with contextlib.suppress(OSError):
        (Path(run_dir) / CANCEL).write_text("cancel\n")


def run_on_worker(
    argv: list[str],
    env: dict[str, str],
    run_dir: str,
    log_name: str,
    poll_s: float = 0.5,
    grace_s: float = 30.0,
) -> int:
    root = Path(run_dir)
    with open(root / log_name, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - an argv, no shell
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (root / WORKER_INFO).write_text(
        json.dumps({"host": socket.gethostname(), "pid": proc.pid}) + "\n"
    )
    ending_since: float | None = None
    while proc.poll() is None:
        if (root / CANCEL).exists():
            if ending_since is None:
                ending_since = time.monotonic()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
            elif time.monotonic() - ending_since > grace_s:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(poll_s)
    return proc.returncode
