"""The local sandbox platform: a real JupyterHub and TAP service on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from library import sandbox
from library.errors import UserError
from library.sandbox import checks
from library.sandbox.images import sia_url
from library.toolbox import command


@command
def up(tap: bool = True, port_base: int | None = None, timeout: float = 120.0) -> dict[str, Any]:
    """Start the sandbox (JupyterHub, its proxy and the DaCHS TAP service) and wait for it.

    Idempotent: what already runs is reported and left alone; stale PID files of a sandbox that
    was killed are cleaned up first. Each service must answer a real request before this returns.
    The state (logs, PID files, token, homes) is in `.sandbox/` or `$BOSUN_SANDBOX_DIR`.

    Args:
        tap: Start the TAP service too (``--no-tap``: JupyterHub alone).
        port_base: First of four ports: hub, proxy API, hub internal, TAP (default 8700, or
            the base of the sandbox already running).
        timeout: Seconds each service may take to answer.
    """
    return sandbox.up(with_tap=tap, port_base=port_base, timeout=timeout)


@command
def down() -> dict[str, Any]:
    """Stop the sandbox: users' labs (through the hub first), hub, proxy and TAP service.

    Stops exactly the processes the sandbox started (tracked PIDs) and reports any sandbox port
    that still has a listener afterwards.
    """
    result = sandbox.down()
    if result["still_listening"]:
        raise UserError(
            "sandbox ports still have a listener after down: "
            + ", ".join(result["still_listening"])
            + " (see `ss -ltnp`)"
        )
    return result


@command(record=False)
def status() -> dict[str, Any]:
    """Show each sandbox service as up or down, with its URL and PID."""
    result = sandbox.status()
    for name in ("hub", "proxy", "tap"):
        service = result[name]
        where = service.get("url") or service.get("api_url") or "-"
        state = "up" if service["running"] else "down"
        pid = service.get("pid") or "-"
        print(f"{name:6} {state:5} {where}  pid {pid}")
    services = result.get("services") or {}
    if services.get("running"):
        # Discovery and Git LFS are one process; SIA is a service of the TAP half's DaCHS.
        pid = services["pid"]
        print(f"disco  up    {services['discovery_url']}/discovery  pid {pid}")
        print(f"lfs    up    {services['lfs_url']}/ro/ (read), /rw/ (token)  pid {pid}")
    if result["tap"]["running"] and result["tap"]["url"]:
        print(f"sia    up    {sia_url(result['tap']['url'])}  pid {result['tap']['pid']}")
    for lab in result["labs"]:
        print(f"lab    up    {lab['server']}  pid {lab['pid']}")
    print(f"state  {result['state_dir']}")
    return result


@command(record=False)
def env() -> None:
    """Print `export` lines (hub URL, TAP URL, token file) for another shell.

    Use as ``eval "$(./run_toolbox.py sandbox env)"``. The token itself is never printed.
    """
    for line in sandbox.env_lines():
        print(line)


@command
def check(
    user: str = "bot-sandbox-check", tap: bool = True, table: str = "sandbox.objects"
) -> dict[str, Any]:
    """Check the running sandbox end to end: hub API, a bot user and its token, a TAP count.

    Args:
        user: Bot user to create (or reuse) on the hub.
        tap: Also run ``SELECT COUNT(*)`` on the catalogue through pyvo.
        table: Catalogue table to count.
    """
    return checks.run(user=user, tap=tap, table=table)
