"""Spawn-to-ready of 1, 10 and 25 concurrent labs, and the client's own share of it.

Anchor: the hub's progress stream (time from the spawn request to the hub's `ready` event).
The figure printed is the client overhead (ready event -> spawn_lab returns, which includes
one request to the lab) as a fraction of spawn time; the goal is <= 5 %.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid

import pytest

from tests.integration.lab_fixtures import endpoints


@pytest.mark.parametrize("count", [1, 10, 25])
def test_spawn_to_ready(request, count):
    import aiohttp

    from library.jupyter import HubClient

    ep = endpoints(request)

    async def one(hub, user):
        lab = await hub.lab_session(user)
        try:
            return await lab.spawn_lab(timeout=300)
        finally:
            await lab.delete_lab(timeout=180)
            await lab.aclose()

    async def go():
        connector = aiohttp.TCPConnector(limit=0)
        hub = HubClient(ep.hub_url, ep.token, connector=connector)
        tag = uuid.uuid4().hex[:4]
        try:
            return await asyncio.gather(*(one(hub, f"bot-bench-{tag}-{i}") for i in range(count)))
        finally:
            await hub.aclose()
            await connector.close()

    results = asyncio.run(go())
    spawn = [r.duration_s for r in results]
    overhead = [r.client_overhead_s for r in results]
    share = [o / s for o, s in zip(overhead, spawn, strict=True)]
    print(
        f"\n[labs x{count}] spawn-to-ready median {statistics.median(spawn):.2f} s, "
        f"max {max(spawn):.2f} s; client overhead median {statistics.median(overhead) * 1e3:.1f} ms"
        f" = {statistics.median(share):.2%} of spawn time (max {max(share):.2%}; goal <= 5%)"
    )
