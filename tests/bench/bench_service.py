"""The service under load: API latency while it runs 11,000 monkeys, and what polling costs.

One `service run` process runs 10,000 EmptyLoop and 1,000 HTTPLoop monkeys (each one
execution a second; HTTP against a local nginx's instant 200, pinned to its own core). Then:

1. time from `PUT /flocks` of the 1,000 HTTP monkeys to all started (`start_time` set);
2. 10 s not polled: the monkeys' executions per second (the service's own counters, and the
   requests nginx counted);
3. 10 s polled 10x/s (GET /summary and GET /flocks/http in turn, GET /flocks/empty once a
   second): the same rates, and each route's p50/p99 latency as the poller saw it, then
   10 s not polled again, then the event loop's lag (its health gauge, each second's maximum
   over 5 s): a request waits behind it, whatever its own cost;
4. 100 GETs of the 10,000-monkey flock at 10/s, for a p99 that is not just the slowest of 10;
5. the anchor: 50 more with every monkey paused, what the route itself costs on this machine
   that day (the same flock's answer, rendered on an idle loop);
6. time from SIGTERM to exit.

Figures are printed, not asserted (speed is measured here, not gated). Run with
`.venv/bin/python -m pytest -s tests/bench/bench_service.py`.
"""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from tests.bench.bench_scale_http import nginx  # noqa: F401 - a fixture, found by name
from tests.support.service import ServiceProcess, bearer, metric, write_auth

PHASE_S = 10.0


def _flock(name: str, count: int, business: dict) -> dict:
    return {
        "name": name,
        "count": count,
        "user_spec": {"username_prefix": f"bot-mobu-{name}"},
        "scopes": [],
        "start_batch_size": 0,
        "business": business,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _counts(c: httpx.Client) -> dict[str, int]:
    return {f["name"]: f["success_count"] for f in c.get("/summary").json()["flocks"]}


def _rates(c: httpx.Client, nginx, seconds: float, poll=None) -> dict:  # noqa: F811
    before, requests_before, t0 = _counts(c), nginx.requests(), time.monotonic()
    latencies: dict[str, list[float]] = {}
    routes = ["/summary", "/flocks/http"]
    i = 0
    while time.monotonic() < t0 + seconds:
        if poll is None:
            time.sleep(0.2)
            continue
        route = "/flocks/empty" if i % 10 == 9 else routes[i % 2]
        start = time.perf_counter()
        r = poll.get(route)
        latencies.setdefault(route, []).append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200
        i += 1
        time.sleep(max(0.0, t0 + i * 0.1 - time.monotonic()))
    elapsed = time.monotonic() - t0
    after, requests_after = _counts(c), nginx.requests()
    return {
        "empty_per_s": (after["empty"] - before["empty"]) / elapsed,
        "http_per_s": (after["http"] - before["http"]) / elapsed,
        "nginx_per_s": (requests_after - requests_before - 1) / elapsed,
        "latency_ms": {
            route: (statistics.median(v), _pct(v, 99), len(v)) for route, v in latencies.items()
        },
    }


def _latencies(poll: httpx.Client, route: str, count: int) -> list[float]:
    out, t0 = [], time.monotonic()
    for i in range(count):
        start = time.perf_counter()
        assert poll.get(route).status_code == 200
        out.append((time.perf_counter() - start) * 1000)
        time.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
    return out


@pytest.mark.timeout(900)
def test_api_latency_and_polling_cost(nginx, tmp_path):  # noqa: F811
    svc = ServiceProcess(
        tmp_path,
        "--state-dir",
        str(tmp_path / "state"),
        "--auth-file",
        str(write_auth(tmp_path / "auth.yaml")),
    ).wait_ready()
    try:
        c = httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=120)
        empty = _flock("empty", 10_000, {"type": "EmptyLoop", "options": {"idle_time": "1s"}})
        t0 = time.monotonic()
        assert c.put("/flocks", json=empty).status_code == 201
        while c.get("/flocks/empty/summary").json()["start_time"] is None:
            time.sleep(0.05)
        empty_started = time.monotonic() - t0
        http = _flock(
            "http", 1_000, {"type": "HTTPLoop", "options": {"url": nginx.fast, "idle_time": "1s"}}
        )
        t0 = time.monotonic()
        r = c.put("/flocks", json=http)
        put_s = time.monotonic() - t0
        assert r.status_code == 201
        while c.get("/flocks/http/summary").json()["start_time"] is None:
            time.sleep(0.02)
        http_started = time.monotonic() - t0
        time.sleep(5)  # past the first second's thundering herd
        quiet = _rates(c, nginx, PHASE_S)
        with httpx.Client(base_url=svc.url, timeout=60) as poller:
            polled = _rates(c, nginx, PHASE_S, poll=poller)
        quiet2 = _rates(c, nginx, PHASE_S)
        # The loop's own lag under these monkeys (the engine's health gauge, the last second's
        # maximum): what any request may wait behind, whatever its own cost.
        lags = []
        for _ in range(5):
            time.sleep(1)
            lags.append(1000 * metric(svc, "bosun_event_loop_lag_seconds", stat="max"))
        with httpx.Client(base_url=svc.url, timeout=60) as poller:
            big = _latencies(poller, "/flocks/empty", 100)
            # The anchor: the same answer with every monkey paused, what the route itself
            # costs on this machine today (the load's share is the rest).
            for name in ("empty", "http"):
                assert c.post(f"/flocks/{name}/pause").status_code == 200
            idle = _latencies(poller, "/flocks/empty", 50)
            for name in ("empty", "http"):
                assert c.post(f"/flocks/{name}/resume").status_code == 200
            time.sleep(2)
        t0 = time.monotonic()
        code = svc.stop()
        stop_s = time.monotonic() - t0
    finally:
        svc.stop()
    assert code == 0, svc.output()[-3000:]
    print()
    print(f"PUT /flocks of 10,000 EmptyLoop -> all started: {empty_started:.2f} s")
    print(
        f"PUT /flocks of 1,000 HTTPLoop: answered in {put_s * 1000:.0f} ms, "
        f"all started in {http_started:.2f} s"
    )
    for label, r in (("not polled", quiet), ("polled 10/s", polled), ("not polled again", quiet2)):
        print(
            f"{label:<17} EmptyLoop {r['empty_per_s']:8.0f}/s  HTTPLoop {r['http_per_s']:6.0f}/s"
            f"  nginx {r['nginx_per_s']:6.0f} req/s"
        )
    base_http = (quiet["http_per_s"] + quiet2["http_per_s"]) / 2
    base_empty = (quiet["empty_per_s"] + quiet2["empty_per_s"]) / 2
    print(
        f"polled vs not: EmptyLoop {100 * (polled['empty_per_s'] / base_empty - 1):+.1f} %, "
        f"HTTPLoop {100 * (polled['http_per_s'] / base_http - 1):+.1f} %"
    )
    print(
        f"event loop lag, max of each second (no API traffic): {min(lags):.0f}-{max(lags):.0f} ms"
    )
    for route, (p50, p99, n) in polled["latency_ms"].items():
        print(f"GET {route:<15} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  ({n} requests)")
    print(
        f"GET /flocks/empty  p50 {statistics.median(big):7.1f} ms  p99 {_pct(big, 99):7.1f} ms"
        f"  ({len(big)} requests at 10/s, alone)"
    )
    print(
        f"GET /flocks/empty  p50 {statistics.median(idle):7.1f} ms  p99 {_pct(idle, 99):7.1f} ms"
        f"  ({len(idle)} requests at 10/s, every monkey paused: the anchor); under load"
        f" p50 {statistics.median(big) / statistics.median(idle):.2f}x the anchor's"
    )
    print(f"SIGTERM -> exit with 11,000 monkeys: {stop_s:.2f} s")


@pytest.mark.timeout(900)
def test_sigterm_to_exit_with_ten_labs(sandbox, tmp_path):  # noqa: F811
    """Ten NubladoPythonLoop labs ready on the sandbox's hub, then SIGTERM: seconds to exit
    (every lab deleted first) and the hub's servers afterwards."""
    from tests.integration.test_scale import running_labs

    prefix = "bot-svcbench"
    svc = ServiceProcess(
        tmp_path,
        "--state-dir",
        str(tmp_path / "state"),
        "--auth-file",
        str(write_auth(tmp_path / "auth.yaml")),
    ).wait_ready()
    try:
        c = httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=120)
        flock = _flock(
            "labs",
            10,
            {
                "type": "NubladoPythonLoop",
                "options": {
                    "code": "print(6*7)",
                    "execution_idle_time": "1s",
                    "max_executions": 1000,
                    "spawn_timeout": "5m",
                    "delete_timeout": "2m",
                },
            },
        )
        flock["user_spec"]["username_prefix"] = prefix
        t0 = time.monotonic()
        assert c.put("/flocks", json=flock).status_code == 201
        while len(running_labs(sandbox, prefix, ready_only=True)) < 10:
            assert time.monotonic() - t0 < 600, "ten labs not ready in 10 min"
            time.sleep(1)
        ready_s = time.monotonic() - t0
        time.sleep(5)
        t0 = time.monotonic()
        code = svc.stop(timeout=300)
        stop_s = time.monotonic() - t0
    finally:
        svc.stop()
    left = running_labs(sandbox, prefix)
    assert code == 0 and left == []
    print(
        f"\n10 labs ready {ready_s:.1f} s after PUT; SIGTERM -> exit {stop_s:.1f} s; "
        f"servers left on the hub: {len(left)}"
    )
