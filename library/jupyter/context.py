"""Glue for commands: a recorder in the artifact dir and one user's LabSession."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.contextmanager
def recorder(flock: str, business: str):
    """A Recorder writing to ``<artifact dir>/events``, closed (flushed) on exit."""
    from library import env
    from library.events import Recorder

    rec = Recorder(out_dir=env.artifact_dir() / "events", flock=flock, business=business)
    try:
        yield rec
    finally:
        rec.close()


@contextlib.asynccontextmanager
async def user_lab(platform, user: str, rec=None) -> AsyncIterator:
    """USER's LabSession on PLATFORM (admin mode creates the user and a token first)."""
    from library.jupyter.hub import HubClient

    hub = HubClient(platform.hub_url, platform.admin_token, recorder=rec)
    lab = None
    try:
        lab = await hub.lab_session(user, platform.token_for(user))
        yield lab
    finally:
        if lab is not None:
            await lab.aclose()
        await hub.aclose()


def write_json(name: str, data) -> Path:
    """Write DATA as JSON into the current artifact dir."""
    from library import env

    path = env.artifact_dir() / name
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path
