"""Which endpoint a business talks to: the platform's URL, or service discovery by `dataset`.

mobu asks Repertoire for ``url_for_data(service, dataset)`` (TAP, SIA) and
``url_for_internal("muster")``. bosun does the same with the platform's discovery document
(``--discovery-url``, ``$BOSUN_DISCOVERY_URL``, else the sandbox's), read once per run and
shared by every monkey; a URL the user gave for the service itself (``--tap-url``,
``$BOSUN_SIA_URL``...) wins over discovery, as the user pointed there on purpose.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from library import repertoire
from library.errors import UserError

if TYPE_CHECKING:
    from library.flock.shared import Shared

_USER_ORIGINS = ("flag", "environment")


async def discovery(shared: Shared) -> repertoire.Discovery | None:
    """The platform's discovery document (fetched once per run), or None when it has none."""
    platform = shared.platform()
    if not platform.discovery_url:
        return None
    lock = shared.cache.setdefault("discovery_lock", asyncio.Lock())
    async with lock:
        if "discovery" not in shared.cache:
            shared.cache["discovery"] = await asyncio.to_thread(
                repertoire.fetch, platform.discovery_url
            )
    found: repertoire.Discovery = shared.cache["discovery"]
    return found


async def data_url(shared: Shared, service: str, dataset: str | None) -> str:
    """The URL of SERVICE (``tap``, ``sia``) for DATASET (see the module docstring)."""
    platform = shared.platform()
    field = f"{service}_url"
    given = getattr(platform, field, None)
    by_user = platform.origin.get(field) in _USER_ORIGINS
    doc = None if (given and by_user) else await discovery(shared)
    return repertoire.service_url(
        service,
        dataset,
        given_url=given,
        given_by_user=by_user,
        discovery=doc,
        discovery_url=platform.discovery_url,
    )


async def internal_url(shared: Shared, service: str) -> str:
    """The URL of the internal service SERVICE (``muster``) from service discovery."""
    doc = await discovery(shared)
    url = doc.url_for_internal(service) if doc is not None else None
    if url:
        return url
    where = shared.platform().discovery_url
    if where is None:
        raise UserError(
            f"{service}: found through service discovery, and the platform has none: pass "
            "--discovery-url URL or set $BOSUN_DISCOVERY_URL"
        )
    known = (", ".join(sorted(doc.services.internal)) if doc is not None else "") or "none"
    raise UserError(f"{service}: not in service discovery at {where} (internal services: {known})")
