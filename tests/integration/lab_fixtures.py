"""Shared helpers of the lab and notebook integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid


def endpoints(request):
    """The running sandbox's endpoints; the session `sandbox` fixture starts one if none runs.

    These tests need the hub only, so a sandbox already running without TAP is good enough.
    """
    from library import sandbox
    from library.errors import UserError

    try:
        return sandbox.endpoints()
    except UserError:
        return request.getfixturevalue("sandbox")


def bot(prefix: str) -> str:
    return f"bot-{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def lab_for(ep, user: str, **spawn):
    """A spawned lab, deleted (and its user's session closed) however the test ends."""
    from library.jupyter import HubClient

    hub = HubClient(ep.hub_url, ep.token)
    lab = await hub.lab_session(user)
    try:
        await lab.spawn_lab(timeout=spawn.pop("timeout", 120), **spawn)
        yield lab
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(lab.delete_lab(timeout=60), 90)
        await lab.aclose()
        await hub.aclose()
