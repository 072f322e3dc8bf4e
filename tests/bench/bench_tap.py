"""TAP: async wait strategies against the server's own execution time, and sync throughput.

1. Async latency. Anchor: the sync query time of the same ADQL. For each strategy (bosun's
   hybrid, pure UWS WAIT long-poll, pyvo's own ``run_async``) the figure printed is the
   total time and its excess over the server's execution time, which a 20 ms poll loop
   observes (start of RUN -> COMPLETED seen). Goal: hybrid within 0.2 s of it.
2. Sync throughput at concurrency 1, 10 and 50. Anchor: concurrency 1; printed as
   queries/s and the ratio to the anchor.
"""

from __future__ import annotations

import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

QUERIES = {
    # Fast in the database: the async figure is DaCHS's own job overhead (~1 s).
    "cone": "SELECT objectId, ra, dec, r_mag FROM sandbox.objects WHERE "
    "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 60.0, -32.0, 0.2)) = 1",
    # ~0.4 s in the database, so the job ends between two of DaCHS's 1 s WAIT re-checks.
    "join": "SELECT COUNT(*) AS n FROM sandbox.objects AS a JOIN sandbox.objects AS b "
    "ON a.extendedness = b.extendedness WHERE a.objectId < 1000000200",
}
REPEATS = 5


@pytest.fixture(scope="module")
def tap_url():
    from library.errors import UserError
    from library.sandbox import dachs
    from library.sandbox.state import DEFAULT_PORT_BASE, Ports, state_dir
    from library.tap.service import resolve_url

    try:
        yield resolve_url(None)
        return
    except UserError:
        pass
    port = Ports.from_base(DEFAULT_PORT_BASE).tap
    yield dachs.up(state_dir(), port, 180)["url"]
    dachs.down(state_dir())


def server_time(url: str, adql: str) -> float:
    """RUN -> COMPLETED as seen by polling the job every 20 ms (the best a client can see)."""
    import requests

    session = requests.Session()
    job = session.post(
        f"{url}/async",
        data={"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": adql},
        allow_redirects=False,
        timeout=30,
    ).headers["Location"]
    try:
        session.post(f"{job}/phase", data={"PHASE": "RUN"}, allow_redirects=False, timeout=30)
        t0 = time.perf_counter()
        while b"COMPLETED" not in session.get(f"{job}/phase", timeout=30).content:
            time.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        session.delete(job, allow_redirects=False, timeout=30)


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_async_latency_by_wait_strategy(tap_url, query):
    import pyvo

    from library.tap.client import TapClient

    adql = QUERIES[query]
    timings: dict[str, list[float]] = {"sync (anchor)": [], "server": []}
    phases: dict[str, dict[str, list[float]]] = {}
    strategies = {
        "hybrid": TapClient(tap_url, wait_mode="hybrid"),
        "long-poll": TapClient(tap_url, wait_mode="long-poll"),
    }
    service = pyvo.dal.TAPService(tap_url)
    sync = TapClient(tap_url)
    for _ in range(REPEATS):
        timings["sync (anchor)"].append(sync.run(adql).total_s)
        timings["server"].append(server_time(tap_url, adql))
        for name, client in strategies.items():
            result = client.run(adql, use_async=True)
            assert result.job_deleted
            timings.setdefault(name, []).append(result.total_s)
            for phase in ("submit_s", "queued_s", "executing_s", "fetch_s", "delete_s"):
                phases.setdefault(name, {}).setdefault(phase, []).append(getattr(result, phase))
        t0 = time.perf_counter()
        rows = len(service.run_async(adql))
        timings.setdefault("pyvo run_async", []).append(time.perf_counter() - t0)
        assert rows == result.rows

    anchor = statistics.median(timings["sync (anchor)"])
    server = statistics.median(timings["server"])
    print(
        f"\nasync latency of {query!r}, median of {REPEATS}; "
        f"anchor = sync {anchor * 1000:.0f} ms; "
        f"server RUN->COMPLETED (20 ms polls) {server * 1000:.0f} ms"
    )
    for name, values in timings.items():
        med = statistics.median(values)
        print(
            f"  {name:16} {med * 1000:7.0f} ms  x{med / anchor:5.1f} of sync  "
            f"excess over server {(med - server) * 1000:+6.0f} ms"
        )
    for name in strategies:
        print(
            f"  {name:16} phases (median ms): "
            + ", ".join(
                f"{phase} {statistics.median(phases[name][phase]) * 1000:.0f}"
                for phase in ("submit_s", "queued_s", "executing_s", "fetch_s", "delete_s")
            )
        )


@pytest.mark.parametrize("concurrency", [1, 10, 50])
def test_sync_throughput(tap_url, concurrency, _throughput={}):  # noqa: B006 - shared anchor
    from library.tap.client import TapClient
    from library.tap.query_set import QuerySet

    qs = QuerySet.load("bosun-sandbox")
    rng = random.Random(2024)
    per_worker = max(2, 60 // concurrency)
    queries = [qs.generate(rng)[1] for _ in range(per_worker * concurrency)]
    client = TapClient(tap_url, timeout=120)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(client.execute, queries))
    elapsed = time.perf_counter() - t0
    failures = [r.error for r in results if not r.success]
    assert not failures, failures[:3]
    rate = len(results) / elapsed
    _throughput[concurrency] = rate
    p50 = statistics.median(r.total_s for r in results) * 1000
    anchor = _throughput.get(1)
    ratio = f"x{rate / anchor:.2f} of concurrency 1" if anchor else "(anchor not measured)"
    print(
        f"\nsync throughput, concurrency {concurrency:2}: {len(results)} queries in "
        f"{elapsed:.1f} s = {rate:.1f} queries/s {ratio}; p50 {p50:.0f} ms"
    )
