"""One bot user's lab for a command: the hub resolved once, events in the artifact dir.

The ``nublado`` and ``notebook`` commands run their work against one user's LabSession; this
module opens it (creating the user and a token first when the token is an admin token), drives
the asyncio loop, and records the lab's operations under the command's ``events/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from library import artifacts
from library.errors import UserError
from library.jupyter.errors import ExecutionError, JupyterError
from library.jupyter.hub import HubClient
from library.jupyter.platform import resolve
from library.progress import progress


@contextlib.asynccontextmanager
async def user_lab(access, user: str, rec=None) -> AsyncIterator:
    """USER's LabSession on the hub of ACCESS (a ``jupyter.platform.HubAccess``)."""
    hub = HubClient(access.hub_url, access.admin_token, recorder=rec)
    lab = None
    try:
        lab = await hub.lab_session(user, access.token_for(user))
        yield lab
    finally:
        if lab is not None:
            await lab.aclose()
        await hub.aclose()


def in_lab(
    user: str,
    hub_url: str | None,
    token_file: Path | None,
    body: Callable[[Any], Awaitable[Any]],
    record: str | None = None,
) -> Any:
    """``await body(lab)`` with USER's lab session; events go to ``events/`` as flock RECORD.

    Platform errors (``JupyterError``) propagate: each command reports them its own way.
    """
    access = resolve(hub_url, token_file)

    async def go():
        with (
            artifacts.events_recorder(record, "nublado")
            if record
            else contextlib.nullcontext() as rec
        ):
            async with user_lab(access, user, rec) as lab:
                return await body(lab)

    return asyncio.run(go())


def python_loop(
    user: str,
    code: str,
    count: int,
    idle_s: float,
    timeout: float,
    hub_url: str | None,
    token_file: Path | None,
    record: str,
) -> dict:
    """Run CODE COUNT times in one new kernel of USER's running lab (mobu's NubladoPythonLoop).

    Stops at the first failure. ``executions.json`` holds every execution and, after a failure,
    which one failed and why; the ``JupyterError`` is then re-raised.
    """
    executions: list[dict] = []

    async def loop(lab):
        if not await lab.lab_running():
            raise UserError(f"--user {user}: no running lab; run nublado spawn_lab first")
        kernel = await lab.open_kernel()
        try:
            with progress(count, f"executions for {user}") as advance:
                for i in range(count):
                    if i and idle_s:
                        await asyncio.sleep(idle_s)
                    res = await kernel.execute(code, timeout)
                    executions.append(res.to_dict())
                    advance()
        finally:
            await kernel.aclose()

    failure: dict | None = None
    try:
        in_lab(user, hub_url, token_file, loop, record=record)
    except JupyterError as exc:
        failure = {"execution": len(executions) + 1, "error": exc.one_line()}
        if isinstance(exc, ExecutionError):
            failure["traceback"] = exc.plain_traceback()
        raise
    finally:
        # Also when interrupted: the executions that ran are kept.
        if executions or failure:
            extra = {"failure": failure} if failure else {}
            artifacts.write_json("executions.json", {"executions": executions, **extra})
    durations = [e["duration_s"] for e in executions]
    return {
        "executions": len(executions),
        "median_s": round(statistics.median(durations), 6),
        "max_s": round(max(durations), 6),
        "last": executions[-1],
    }
