"""Async client for JupyterHub and its labs: spawn, execute over the kernel websocket, delete.

Typical use (one process, many users, one socket pool)::

    hub = HubClient(hub_url, admin_token, connector=aiohttp.TCPConnector(limit=0))
    lab = await hub.lab_session("bot-1")          # or hub.lab_session(user, token=users_token)
    await lab.spawn_lab(timeout=120)
    kernel = await lab.open_kernel()
    result = await kernel.execute("print(1+1)", timeout=30)
    await kernel.aclose()
    await lab.delete_lab()
    await lab.aclose(); await hub.aclose()

Importing this package loads no HTTP machinery: aiohttp is imported when a client is built.
"""

from library.jupyter.errors import (
    DeleteTimeout,
    ExecutionError,
    ExecutionTimeout,
    HubHTTPError,
    JupyterError,
    KernelDied,
    SpawnFailed,
    SpawnTimeout,
)
from library.jupyter.hub import HubClient
from library.jupyter.kernel import Kernel
from library.jupyter.lab import LabSession, SpawnForm, SpawnResult
from library.jupyter.messages import ExecutionResult

__all__ = [
    "DeleteTimeout",
    "ExecutionError",
    "ExecutionResult",
    "ExecutionTimeout",
    "HubClient",
    "HubHTTPError",
    "JupyterError",
    "Kernel",
    "KernelDied",
    "LabSession",
    "SpawnFailed",
    "SpawnForm",
    "SpawnResult",
    "SpawnTimeout",
]
