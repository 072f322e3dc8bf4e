"""The local sandbox platform: a real JupyterHub and a real TAP service (DaCHS) on 127.0.0.1.

`up`, `down`, `status` and `endpoints` are what the toolbox and the tests use; the halves live
in `hub` (JupyterHub + configurable-http-proxy) and `dachs` (the TAP service).
"""

from __future__ import annotations

import importlib
import logging
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from library.errors import UserError
from library.sandbox import hub, services, tapauth
from library.sandbox import state as st
from library.tokens import read_token

if TYPE_CHECKING:
    from library.platform import Platform

log = logging.getLogger(__name__)

NOT_RUNNING = "the sandbox is not running: start it with ./run_toolbox.py sandbox up"


@dataclass(frozen=True)
class Endpoints:
    """Where the running sandbox answers, and the orchestrator token to talk to its hub."""

    hub_url: str
    hub_api_url: str
    token: str
    token_file: Path
    tap_url: str | None
    state_dir: Path

    def __repr__(self) -> str:  # the token must not leak through a repr in a log or traceback
        return (
            f"Endpoints(hub_url={self.hub_url!r}, tap_url={self.tap_url!r}, "
            f"token_file={str(self.token_file)!r}, state_dir={str(self.state_dir)!r})"
        )


def _dachs():
    """The TAP half's module, or None when this checkout does not have it."""
    try:
        dachs = importlib.import_module("library.sandbox.dachs")
    except ModuleNotFoundError as exc:
        if exc.name != "library.sandbox.dachs":
            raise
        return None
    return dachs


def tap_unavailable_reason() -> str | None:
    dachs = _dachs()
    if dachs is None:
        return "the TAP half (library/sandbox/dachs.py) is not part of this checkout"
    return dachs.unavailable_reason()


def _urls(port: int) -> tuple[str, str]:
    hub_url = f"http://127.0.0.1:{port}/"
    return hub_url, f"http://127.0.0.1:{port}/hub/api"


def endpoints() -> Endpoints:
    """Endpoints of the running sandbox; UserError when it is not running."""
    layout = st.Layout(st.state_dir())
    settings = layout.read_settings()
    if hub.running(layout) is None or "port_base" not in settings:
        raise UserError(NOT_RUNNING)
    if not layout.token_file.is_file():
        raise UserError(
            f"the sandbox token file {layout.token_file} is missing: restart the sandbox "
            "with ./run_toolbox.py sandbox down && ./run_toolbox.py sandbox up"
        )
    token = read_token(layout.token_file)
    hub_url, hub_api_url = _urls(st.Ports.from_base(settings["port_base"]).hub)
    return Endpoints(
        hub_url=hub_url,
        hub_api_url=hub_api_url,
        token=token,
        token_file=layout.token_file,
        tap_url=_tap_status(layout).get("url"),
        state_dir=layout.root,
    )


def platform() -> Platform | None:
    """The running sandbox as a `library.platform.Platform`, or None when nothing of it runs.

    The hub and the TAP service are reported independently (the TAP half may run without the
    hub); bot users' tokens are minted through the hub with the orchestrator token.
    """
    from library.platform import JupyterHubTokens, Platform

    layout = st.Layout(st.state_dir())
    settings = layout.read_settings()
    hub_url = None
    tokens = None
    if hub.running(layout) is not None and "port_base" in settings:
        hub_url = _urls(st.Ports.from_base(settings["port_base"]).hub)[0]
        if layout.token_file.is_file():
            tokens = JupyterHubTokens(hub_url=hub_url, admin_token_file=str(layout.token_file))
    tap = _tap_status(layout)
    tap_urls = {}
    if tap.get("url") and tap.get("auth_url"):
        tap_urls["auth"] = tap["auth_url"]
    if hub_url is None and not tap.get("url"):
        return None

    extra = services.platform_urls(
        layout.root, settings.get("port_base", st.DEFAULT_PORT_BASE), tap.get("url")
    )
    return Platform(
        hub_url=hub_url,
        tap_url=tap.get("url"),
        tap_urls=tap_urls,
        tokens=tokens,
        sia_url=extra["sia_url"],
        discovery_url=extra["discovery_url"],
    )


def _tap_status(layout) -> dict:
    dachs = _dachs()
    if dachs is None:
        return {"running": False, "url": None, "pid": None}
    result = dachs.status(layout.root)
    front = tapauth.running(layout.root)
    if front is not None and result.get("running"):
        base = layout.read_settings().get("port_base", st.DEFAULT_PORT_BASE)
        result = {**result, "auth_url": tapauth.url(base), "auth_pid": front.pid}
    return result if result.get("running") else {**result, "url": None}


def up(with_tap: bool = True, port_base: int | None = None, timeout: float = 120.0) -> dict:
    """Start what is not running yet; wait until each service answers; return URLs and PIDs."""
    layout = st.Layout(st.state_dir())
    settings = layout.read_settings()
    result: dict = {"state_dir": str(layout.root), "already_running": [], "started": []}

    hub_proc = hub.running(layout)
    if hub_proc is not None:
        base = settings.get("port_base", st.DEFAULT_PORT_BASE)
        if port_base is not None and port_base != base:
            log.warning(
                "the sandbox already runs with --port-base %d; run `sandbox down` first to "
                "move it to %d",
                base,
                port_base,
            )
        ports = st.Ports.from_base(base)
        result["already_running"].append("hub")
        log.info("JupyterHub is already running (pid %d)", hub_proc.pid)
    else:
        ports = st.Ports.from_base(port_base if port_base is not None else st.DEFAULT_PORT_BASE)
        stale = hub.stop(layout, token=None)
        leftovers = [pid for pids in stale.values() for pid in pids]
        if leftovers:
            log.info("stopped leftover processes of a previous sandbox: %s", leftovers)

    tap_reason = tap_unavailable_reason() if with_tap else "--no-tap"
    # The TAP half keeps its own state in this state dir: a DaCHS it reports running is ours.
    tap_running = bool(_tap_status(layout).get("running"))
    want_tap_start = with_tap and tap_reason is None and not tap_running
    to_check = {} if hub_proc is not None else ports.named(with_tap=False)
    if want_tap_start:
        to_check["TAP"] = ports.tap
    for name, port in to_check.items():
        if not st.port_is_free(port):
            raise UserError(
                f"port {port} ({name}) is already in use on 127.0.0.1: free it or choose "
                "other ports with --port-base N"
            )

    if hub_proc is None:
        t0 = time.monotonic()
        layout.write_settings({**settings, "port_base": ports.base, "tap": False})
        proc = hub.start(layout, ports, timeout)
        settings = {**layout.read_settings()}
        result["started"].append("hub")
        log.info("JupyterHub answered after %.1f s (pid %d)", time.monotonic() - t0, proc.pid)

    if with_tap and tap_reason is not None and tap_reason != "--no-tap":
        log.info("TAP service skipped: %s; starting JupyterHub alone", tap_reason)
    if tap_running:
        result["already_running"].append("tap")
        layout.write_settings({**layout.read_settings(), "tap": True})
        log.info("TAP service is already running")
    elif want_tap_start:
        t0 = time.monotonic()
        tap = _dachs().up(layout.root, ports.tap, timeout)
        settings["tap"] = True
        layout.write_settings(settings)
        result["started"].append("tap")
        log.info("TAP service answered after %.1f s at %s", time.monotonic() - t0, tap["url"])

    _start_tap_front(layout, ports, result)
    _start_services(layout, ports, result)
    result.update(status())
    log.info("hub: %s", result["hub"]["url"])
    log.info("TAP: %s", result["tap"]["url"] or f"not running ({tap_reason or 'stopped'})")
    log.info("token file: %s", layout.token_file)
    return result


def _start_tap_front(layout, ports, result: dict) -> None:
    """The token-checking front of TAP (library.sandbox.tapauth), when hub and TAP both run."""
    tap = _tap_status(layout)
    if not tap.get("url"):
        return
    if tapauth.running(layout.root) is not None:
        result["already_running"].append("tap_auth")
        return
    tapauth.start(layout.root, ports.base + tapauth.PORT_OFFSET, tap["url"], _urls(ports.hub)[1])
    result["started"].append("tap_auth")
    log.info("TAP with token check: %s", tapauth.url(ports.base))


def _start_services(layout, ports, result: dict) -> None:
    """Service discovery and Git LFS (library.sandbox.services), when the hub runs."""
    if hub.running(layout) is None:
        return
    was_running = services.running(layout.root) is not None
    found = services.sandbox_up(
        layout.root, ports.base, _urls(ports.hub)[0], _tap_status(layout).get("url")
    )
    result["already_running" if was_running else "started"].append("services")
    log.info("service discovery: %s/discovery", found["discovery_url"])


def down() -> dict:
    """Stop labs, hub, proxy and TAP service that this sandbox started; check no port is left."""
    layout = st.Layout(st.state_dir())
    settings = layout.read_settings()
    ports = st.Ports.from_base(settings.get("port_base", st.DEFAULT_PORT_BASE))
    token = None
    if layout.token_file.exists():
        token = read_token(layout.token_file)

    t0 = time.monotonic()
    stopped = hub.stop(layout, token=token, hub_api_url=_urls(ports.hub)[1])
    stopped["tap_auth"] = tapauth.stop(layout.root)

    stopped["services"] = services.stop(layout.root)
    if stopped["hub"] or stopped["labs"]:
        log.info(
            "stopped JupyterHub and %d lab(s) in %.1f s",
            len(stopped["labs"]),
            time.monotonic() - t0,
        )
    dachs = _dachs()
    if dachs is not None and (settings.get("tap") or dachs.status(layout.root).get("running")):
        t0 = time.monotonic()
        dachs.down(layout.root)
        stopped["tap"] = True
        log.info("stopped the TAP service in %.1f s", time.monotonic() - t0)
    if settings:
        layout.write_settings({**settings, "tap": False})
    # Only the ports of services stopped here are checked: when nothing ran, the ports may
    # well belong to someone else.
    listening = []
    if stopped["hub"] or stopped["proxy"]:
        listening = [
            f"{port} ({name})"
            for name, port in ports.named(with_tap=bool(stopped.get("tap"))).items()
            if not st.wait_until(lambda port=port: not st.port_is_listening(port), 5)
        ]
    if listening:
        log.warning("still listening after down: %s", ", ".join(listening))
    return {"stopped": stopped, "still_listening": listening}


def status() -> dict:
    """Each service up or down, with its URL and PID."""
    layout = st.Layout(st.state_dir())
    settings = layout.read_settings()
    ports = st.Ports.from_base(settings.get("port_base", st.DEFAULT_PORT_BASE))
    hub_proc = hub.running(layout)
    proxy = st.live_process(layout.proxy_pid, "configurable-http-proxy")
    labs = []
    if layout.lab_pids.exists():
        for pid_file in sorted(layout.lab_pids.glob("*.pid")):
            lab = st.live_process(pid_file, "jupyterhub-singleuser")
            if lab is not None:
                labs.append({"server": pid_file.stem, "pid": lab.pid})
    tap = _tap_status(layout)
    return {
        "state_dir": str(layout.root),
        "port_base": ports.base,
        "hub": {
            "running": hub_proc is not None,
            "url": _urls(ports.hub)[0],
            "pid": hub_proc.pid if hub_proc else None,
        },
        "proxy": {
            "running": proxy is not None,
            "api_url": f"http://127.0.0.1:{ports.proxy_api}/",
            "pid": proxy.pid if proxy else None,
        },
        "tap": {"running": bool(tap.get("running")), "url": tap.get("url"), "pid": tap.get("pid")},
        "tap_auth": {"url": tap.get("auth_url"), "pid": tap.get("auth_pid")},
        "services": _services_status(layout, ports.base),
        "labs": labs,
        "token_file": str(layout.token_file),
    }


def _services_status(layout, port_base: int) -> dict:
    return services.status(layout.root, port_base)


def env_lines() -> list[str]:
    """`export` lines for another shell: URLs and the token file (never the token itself)."""
    ep = endpoints()
    return [
        f"export BOSUN_HUB_URL={shlex.quote(ep.hub_url)}",
        f"export BOSUN_TAP_URL={shlex.quote(ep.tap_url or '')}",
        f"export BOSUN_TOKEN_FILE={shlex.quote(str(ep.token_file))}",
    ]
