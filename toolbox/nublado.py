"""Labs on the platform: spawn, run code, loop, status, delete (one bot user at a time)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, NoReturn

from library import artifacts, labs, redact
from library.errors import CheckFailed, UserError
from library.jupyter.errors import JupyterError
from library.toolbox import command

log = logging.getLogger(__name__)


def _fail(exc) -> NoReturn:
    """An expected platform failure as one line, exit 1 (the message holds no token)."""
    raise CheckFailed(exc.one_line()) from None


@command
def spawn_lab(
    user: str,
    image: str | None = None,
    size: str | None = None,
    timeout: float = 180.0,
    via: Literal["api", "form"] = "api",
    image_field: Literal["image_list", "image_tag", "image_class"] = "image_list",
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Spawn a lab for a bot user and wait until it is ready.

    Follows the hub's progress stream; `spawn_progress.json` keeps every event with its time.
    A lab that is already running is reported (`already_running`) and left as it is.

    Args:
        user: Bot user name.
        image: Image to ask for (Nublado image reference or tag); the hub default when omitted.
        size: Lab size name (Nublado), e.g. ``small``.
        timeout: Seconds the lab may take to be ready.
        via: ``api``: hub REST API; ``form``: the Nublado spawn form with its XSRF token.
        image_field: Form field carrying the image (``--via form`` only).
        hub_url: Hub base URL ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """

    async def spawn(lab):
        result = await lab.spawn_lab(
            timeout=timeout, via=via, image=image, size=size, image_field=image_field
        )
        return result.to_dict()

    try:
        result = labs.in_lab(user, hub_url, token_file, spawn, record="spawn_lab")
    except JupyterError as exc:
        artifacts.write_json("spawn_progress.json", getattr(exc, "progress_log", []))
        _fail(exc)
    artifacts.write_json("spawn_progress.json", result.pop("progress"))
    log.info(
        "lab of %s ready in %.2f s (client overhead %.3f s)",
        user,
        result["duration_s"],
        result["client_overhead_s"],
    )
    return result


@command
def run_code(
    user: str,
    code: str,
    timeout: float = 60.0,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Run Python in a new kernel of the user's running lab and show its output.

    Args:
        user: Bot user name; the lab must be running (``nublado spawn_lab``).
        code: Python source to execute.
        timeout: Seconds the execution may take.
        hub_url: Hub base URL ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """
    result = _loop(user, code, 1, 0.0, timeout, hub_url, token_file, "run_code")

    print(redact.redact_text(result["last"]["stdout"]), end="")
    return result["last"]


@command
def python_loop(
    user: str,
    code: str,
    max_executions: int = 10,
    execution_idle_time: float = 0.0,
    timeout: float = 60.0,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Run the same code N times in one kernel of the user's lab (mobu's NubladoPythonLoop).

    Stops at the first failure. `executions.json` holds every execution's duration and output.

    Args:
        user: Bot user name; the lab must be running (``nublado spawn_lab``).
        code: Python source to execute each time.
        max_executions: Number of executions.
        execution_idle_time: Seconds to wait between executions.
        timeout: Seconds each execution may take.
        hub_url: Hub base URL ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """
    if max_executions < 1:
        raise UserError(f"--max-executions {max_executions}: give at least 1")
    result = _loop(
        user, code, max_executions, execution_idle_time, timeout, hub_url, token_file, "python_loop"
    )
    result.pop("last")
    return result


def _loop(user, code, count, idle, timeout, hub_url, token_file, name) -> dict:
    try:
        return labs.python_loop(user, code, count, idle, timeout, hub_url, token_file, record=name)
    except JupyterError as exc:
        _fail(exc)


@command
def delete_lab(
    user: str,
    timeout: float = 60.0,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Delete the user's lab and wait until the hub no longer lists it.

    Args:
        user: Bot user name.
        timeout: Seconds the lab may take to go away.
        hub_url: Hub base URL ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """

    async def delete(lab):
        was_running = await lab.server_status() is not None
        seconds = await lab.delete_lab(timeout=timeout)
        return {"user": user, "was_running": was_running, "duration_s": round(seconds, 6)}

    try:
        return labs.in_lab(user, hub_url, token_file, delete, record="delete_lab")
    except JupyterError as exc:
        _fail(exc)


@command
def lab_status(
    user: str,
    hub_url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Show whether the user's lab is running, pending or absent.

    Args:
        user: Bot user name.
        hub_url: Hub base URL ($BOSUN_HUB_URL, else the sandbox).
        token_file: Admin token, or ``user: token`` lines ($BOSUN_TOKEN_FILE, else the sandbox).
    """

    async def status(lab):
        server = await lab.server_status()
        if server is None:
            return {"user": user, "state": "absent"}
        state = "running" if server.get("ready") else f"pending {server.get('pending')}"
        return {
            "user": user,
            "state": state,
            "url": lab.lab_url,
            "started": server.get("started"),
            "last_activity": server.get("last_activity"),
        }

    try:
        result = labs.in_lab(user, hub_url, token_file, status)
    except JupyterError as exc:
        _fail(exc)
    print(f"{user}: {result['state']}")
    return result
