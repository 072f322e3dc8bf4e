"""The JupyterHub half of the sandbox: start, wait, stop, and the REST calls `up`/`down` need."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from library.errors import UserError
from library.redact import register_secret
from library.sandbox import labuser
from library.sandbox import state as st

log = logging.getLogger(__name__)

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")
# Longest name jupyter_client derives for an ipc socket inside the runtime dir:
# "/<id>/kernel-<uuid4>-ipc-<port>".
_IPC_SUFFIX = len("/123456/kernel-") + 36 + len("-ipc-65535")
_SUN_PATH_MAX = 107


def venv_bin() -> Path:
    return Path(sys.executable).parent


def proxy_command() -> Path:
    return st.REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"


def ensure_token(layout: st.Layout) -> str:
    """The orchestrator token, created (mode 0600) on first use."""
    layout.root.mkdir(parents=True, exist_ok=True)
    if not layout.token_file.exists():
        fd = os.open(layout.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    os.chmod(layout.token_file, 0o600)
    token = layout.token_file.read_text().strip()
    register_secret(token)
    return token


def running(layout: st.Layout):
    """The hub's psutil.Process when the sandbox hub runs, else None."""
    return st.live_process(layout.hub_pid, "jupyterhub")


def check_prerequisites(layout: st.Layout) -> None:
    if not proxy_command().exists():
        raise UserError(
            f"configurable-http-proxy is missing ({proxy_command()}): run `make node-deps`"
        )
    if not (venv_bin() / "jupyterhub-singleuser").exists():
        raise UserError(
            f"jupyterhub-singleuser is missing from {venv_bin()}: run `make python-deps`"
        )
    if len(str(layout.runtime)) + _IPC_SUFFIX > _SUN_PATH_MAX:
        raise UserError(
            f"sandbox state dir {layout.root} is too long for kernel sockets (max "
            f"{_SUN_PATH_MAX - _IPC_SUFFIX - 3} characters): set BOSUN_SANDBOX_DIR to a "
            "shorter path"
        )


def start(layout: st.Layout, ports: st.Ports, timeout: float) -> subprocess.Popen:
    """Start the hub (which starts the proxy) and wait until its REST API answers."""
    check_prerequisites(layout)
    token = ensure_token(layout)
    for path in (layout.logs, layout.hub_dir, layout.homes, layout.runtime, layout.lab_pids):
        path.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment.update(
        {
            "BOSUN_SANDBOX_DIR": str(layout.root),
            "BOSUN_SANDBOX_VENV_BIN": str(venv_bin()),
            "BOSUN_SANDBOX_PROXY_CMD": str(proxy_command()),
            "BOSUN_SANDBOX_HUB_PORT": str(ports.hub),
            "BOSUN_SANDBOX_PROXY_API_PORT": str(ports.proxy_api),
            "BOSUN_SANDBOX_HUB_INTERNAL_PORT": str(ports.hub_internal),
            "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
    )
    # As root, labs drop to an unprivileged user that cannot read the state dir's secrets.
    environment.update(labuser.prepare(layout))
    with open(layout.hub_log, "ab") as logf:
        logf.write(f"\n=== sandbox up {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
        logf.flush()
        proc = subprocess.Popen(
            [str(venv_bin() / "jupyterhub"), "-f", str(CONFIG_FILE)],
            cwd=layout.hub_dir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            # Its own process group, so `down` can stop the hub and the proxy together.
            start_new_session=True,
        )
    st.write_pid(layout.hub_pid, proc.pid)

    url = f"http://127.0.0.1:{ports.hub}/hub/api/users"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            layout.hub_pid.unlink(missing_ok=True)
            _log_tail(layout.hub_log)
            raise UserError(
                f"JupyterHub exited with status {proc.returncode} while starting: see the "
                f"last lines of its log above (whole log: {layout.hub_log})"
            )
        if api_status(url, token) == 200:
            return proc
        if time.monotonic() >= deadline:
            stop(layout, token=None)
            _log_tail(layout.hub_log)
            raise UserError(
                f"JupyterHub did not answer {url} within {timeout:.0f} s: see the last lines "
                f"of its log above (whole log: {layout.hub_log})"
            )
        time.sleep(0.2)


def _log_tail(path: Path, lines: int = 20) -> None:
    # UserError messages are one line, so the log excerpt goes to the command's log instead.
    log.error("last %d lines of %s:\n%s", lines, path, st.tail(path, lines))


def api_status(url: str, token: str | None, method: str = "GET") -> int | None:
    """HTTP status of one request (None when nothing answers)."""
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def api_json(url: str, token: str, method: str = "GET", timeout: float = 10.0):
    request = urllib.request.Request(url, method=method)
    request.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def stop_labs(hub_api_url: str, token: str, timeout: float = 60.0) -> list[str]:
    """Ask the hub to stop every running server; wait until none is left. Returns the users."""
    try:
        users = api_json(f"{hub_api_url}/users?state=active", token)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("could not list active users on the hub (%s); labs are stopped by PID", exc)
        return []
    names = [u["name"] for u in users or [] if u.get("servers") or u.get("server")]
    for name in names:
        try:
            api_json(f"{hub_api_url}/users/{quote(name, safe='')}/server", token, method="DELETE")
        except (urllib.error.URLError, OSError) as exc:
            log.warning("could not stop the server of %s through the hub: %s", name, exc)

    def all_stopped() -> bool:
        try:
            active = api_json(f"{hub_api_url}/users?state=active", token)
        except (urllib.error.URLError, OSError, ValueError):
            return True
        return not any(u.get("servers") or u.get("server") for u in active or [])

    if names and not st.wait_until(all_stopped, timeout, interval=0.5):
        log.warning("some labs were still running after %.0f s; stopping them by PID", timeout)
    return names


def stop(layout: st.Layout, token: str | None, hub_api_url: str | None = None) -> dict:
    """Stop labs (through the API first), the hub and the proxy; then whatever they left."""
    stopped: dict[str, list[int]] = {"labs": [], "hub": [], "proxy": []}
    hub = running(layout)
    if hub is not None and token and hub_api_url:
        stop_labs(hub_api_url, token)
    for pid_file in sorted(layout.lab_pids.glob("*.pid")) if layout.lab_pids.exists() else []:
        lab = st.live_process(pid_file, "jupyterhub-singleuser")
        if lab is not None:
            st.stop_process_group(lab)
            stopped["labs"].append(lab.pid)
        pid_file.unlink(missing_ok=True)
    if hub is not None:
        st.stop_process_group(hub, timeout=15)
        stopped["hub"].append(hub.pid)
    proxy = st.live_process(layout.proxy_pid, "configurable-http-proxy")
    if proxy is not None:
        st.stop_process_group(proxy)
        stopped["proxy"].append(proxy.pid)
    for path in (layout.hub_pid, layout.proxy_pid, layout.hub_dir / "jupyterhub.pid"):
        path.unlink(missing_ok=True)
    return stopped
