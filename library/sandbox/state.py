"""The sandbox state dir: where it is, its layout, port plan, and tracked processes.

Every process the sandbox starts is recorded in a PID file under the state dir together with
its start time, so that `down` (and the stale-file cleanup of `up`) stops exactly those
processes and never a stranger that later reused the PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from library.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT_BASE = 8700
TOKEN_FILE_NAME = "orchestrator.token"


def state_dir() -> Path:
    """The sandbox state dir: `$BOSUN_SANDBOX_DIR`, else `.sandbox/` in the repository."""
    configured = os.environ.get("BOSUN_SANDBOX_DIR")
    return Path(configured).resolve() if configured else REPO_ROOT / ".sandbox"


@dataclass(frozen=True)
class Ports:
    """The port layout derived from one base: hub public, proxy API, hub internal, TAP."""

    base: int
    hub: int
    proxy_api: int
    hub_internal: int
    tap: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(base, base, base + 1, base + 2, base + 3)

    def named(self, with_tap: bool = True) -> dict[str, int]:
        ports = {
            "hub public": self.hub,
            "proxy API": self.proxy_api,
            "hub internal": self.hub_internal,
        }
        if with_tap:
            ports["TAP"] = self.tap
        return ports


class Layout:
    """Paths inside one state dir."""

    def __init__(self, root: Path):
        self.root = root
        self.settings = root / "sandbox.json"
        self.token_file = root / TOKEN_FILE_NAME
        self.logs = root / "logs"
        self.hub_log = self.logs / "hub.log"
        self.hub_dir = root / "hub"
        self.hub_pid = root / "pids" / "hub.pid"
        self.proxy_pid = self.hub_dir / "proxy.pid"
        self.lab_pids = root / "pids" / "labs"
        self.homes = root / "home"
        # Kernel ipc sockets live here: kept short because a socket path must stay < 108 chars.
        self.runtime = root / "rt"

    def read_settings(self) -> dict:
        try:
            return json.loads(self.settings.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def write_settings(self, settings: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings.write_text(json.dumps(settings, indent=2) + "\n")


# --- tracked processes ---------------------------------------------------------------------


def write_pid(path: Path, pid: int) -> None:
    """Record PID with its start time, so a later reuse of the number is not mistaken for it."""
    import psutil

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        created = None
    path.write_text(json.dumps({"pid": pid, "create_time": created}) + "\n")


def read_pid(path: Path) -> tuple[int, float | None] | None:
    """(pid, start time or None) from a PID file, either JSON or a bare number."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        if text.startswith("{"):
            data = json.loads(text)
            return int(data["pid"]), data.get("create_time")
        return int(text), None
    except (ValueError, KeyError, TypeError):
        return None


def live_process(path: Path, must_contain: str):
    """The psutil.Process recorded in PATH if it still runs and is what we started, else None."""
    import psutil

    entry = read_pid(path)
    if entry is None:
        return None
    pid, created = entry
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if created is not None and abs(proc.create_time() - created) > 1.0:
            return None
        if must_contain not in " ".join(proc.cmdline()):
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def start_module(
    module: str,
    args: list[str],
    *,
    pid_file: Path,
    log_file: Path,
    ports: dict[str, int],
    what: str,
    timeout: float = 30.0,
) -> int:
    """Start ``python -m MODULE ARGS`` as a tracked process of its own group, logging to
    LOG_FILE, and wait until it listens on every port of PORTS (name -> port); its PID.

    A port already taken, or a process that exits or does not listen in time, is a UserError
    naming the port or the log (the process is stopped and its PID file removed)."""
    for name, port in ports.items():
        if not port_is_free(port):
            raise UserError(
                f"port {port} ({name}) is already in use on 127.0.0.1: free it or choose "
                "other ports with --port-base N"
            )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as logf:
        child = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_pid(pid_file, child.pid)
    listening = wait_until(
        lambda: child.poll() is not None or all(port_is_listening(p) for p in ports.values()),
        timeout,
    )
    if child.poll() is None and listening:
        return child.pid
    proc = live_process(pid_file, module)
    if proc is not None:
        stop_process_group(proc)
    pid_file.unlink(missing_ok=True)
    how = "exited at start" if child.poll() is not None else f"did not listen within {timeout:g} s"
    last = " | ".join(tail(log_file, 5).splitlines())
    raise UserError(f"the {what} {how}: see {log_file}: {last}")


def stop_process_group(proc, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by PROC (or PROC alone), then SIGKILL what is left."""
    import psutil

    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    members = [proc]
    if pgid == proc.pid:
        members += [
            p for p in psutil.process_iter() if p.pid != proc.pid and _pgid_of(p.pid) == pgid
        ]
    _signal_all(members, signal.SIGTERM, pgid if pgid == proc.pid else None)
    _gone, alive = psutil.wait_procs(members, timeout=timeout)
    if alive:
        _signal_all(alive, signal.SIGKILL, pgid if pgid == proc.pid else None)
        psutil.wait_procs(alive, timeout=5)


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _signal_all(procs, sig, pgid: int | None) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    import psutil

    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            p.send_signal(sig)


# --- ports and logs ------------------------------------------------------------------------


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections in TIME_WAIT must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
