"""The standing service over time, and what its metrics cost the monkeys.

1. Soak: `service run` with 2,000 HTTPLoop monkeys (idle 1 s) against nginx's instant `200` on
   127.0.0.1 for 10 minutes (BOSUN_SOAK_S), /metrics scraped and /summary read every 5 s as
   Prometheus and an operator would. Measured from outside with psutil: the service's RSS
   slope after a 2-minute warm-up (least squares, MiB/min; goal <= 1 MiB/min), and the events
   directory against the retention set (max_age 5 min, max_bytes 4 MiB, checked every 20 s):
   its size must stay within max_bytes plus one flush of events.
2. Metrics cost: 1,000,000 events through `Channel.ok` (HTTPLoop's path) into the service's
   recorder with and without the metrics tally, the tally catching up every 30,000 events
   (a scrape) and at each flush; CPU ns per event of the recording thread for each, and the
   tally's own share (best of 3 rounds each).

Run with `pytest tests/bench/bench_service_soak.py -s -o python_files='bench_*.py'`.
"""

from __future__ import annotations

import json
import os
import time

import httpx
import numpy as np
import psutil
import pytest
import yaml

from tests.bench.bench_scale_http import Nginx, nginx  # noqa: F401 - the fixture
from tests.support.service import ServiceProcess

SOAK_S = float(os.environ.get("BOSUN_SOAK_S", "600"))
WARMUP_S = min(120.0, SOAK_S / 4)
MONKEYS = 2000
POLL_S = 5.0
MAX_BYTES = 4 << 20
MAX_AGE = "5m"
RSS_GOAL_MIB_PER_MIN = 1.0


@pytest.mark.timeout(SOAK_S + 600)
def test_soak(nginx: Nginx, tmp_path):  # noqa: F811
    flock = {
        "name": "soak",
        "count": MONKEYS,
        "user_spec": {"username_prefix": "bot-mobu-soak"},
        "scopes": [],
        "start_batch_size": 200,
        "start_batch_wait": "1s",
        "business": {
            "type": "HTTPLoop",
            "restart": True,
            "options": {"url": nginx.fast, "idle_time": "1s", "error_idle_time": "1s"},
        },
    }
    (tmp_path / "flocks.yaml").write_text(yaml.safe_dump([flock]))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {
                    "state_dir": "state",
                    "autostart": ["flocks.yaml"],
                    "retention": {
                        "max_age": MAX_AGE,
                        "max_bytes": MAX_BYTES,
                        "check_every": "20s",
                    },
                }
            }
        )
    )
    events_dir = tmp_path / "state" / "events"
    svc = ServiceProcess(tmp_path, "--config", str(config)).wait_ready()
    proc = psutil.Process(svc.proc.pid)
    samples = []  # (t, rss, files, bytes, successes, failures)
    largest = 0
    start = time.monotonic()
    requests_before = nginx.requests()
    try:
        with httpx.Client(timeout=30) as client:
            while (elapsed := time.monotonic() - start) < SOAK_S:
                client.get(svc.base + "/metrics").raise_for_status()
                summary = client.get(svc.url + "/flocks/soak/summary").json()
                parts = list(events_dir.rglob("*.parquet"))
                size = sum(p.stat().st_size for p in parts if p.exists())
                samples.append(
                    (
                        elapsed,
                        proc.memory_info().rss,
                        len(parts),
                        size,
                        summary["success_count"],
                        summary["failure_count"],
                    )
                )
                if elapsed > 60:  # the retention has run by then
                    largest = max(largest, size)
                time.sleep(POLL_S)
            final = client.get(svc.url + "/report").json()["events"]
    finally:
        code = svc.stop()
    requests = nginx.requests() - requests_before
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples]) / 2**20
    steady = t >= WARMUP_S
    slope = float(np.polyfit(t[steady] / 60.0, rss[steady], 1)[0]) if steady.sum() > 2 else None
    last = samples[-1]
    per_flush = (last[4] + last[5]) / max(last[0], 1) * 10 * 6  # ~6 bytes/event, 10 s flush
    figures = {
        "monkeys": MONKEYS,
        "soak_s": SOAK_S,
        "requests_per_s": round(requests / SOAK_S, 1),
        "successes": last[4],
        "failures": last[5],
        "rss_mib_start_of_steady": round(float(rss[steady][0]), 1) if steady.any() else None,
        "rss_mib_end": round(float(rss[-1]), 1),
        "rss_mib_max": round(float(rss.max()), 1),
        "rss_slope_mib_per_min_after_warmup": None if slope is None else round(slope, 3),
        "events_files_end": last[2],
        "events_bytes_end": last[3],
        "events_bytes_largest_after_1min": largest,
        "retention_max_bytes": MAX_BYTES,
        "last_upkeep": final["last_upkeep"],
    }
    print("\nservice soak:", json.dumps(figures, indent=1))
    rss_by_minute = {int(ti // 60): round(float(r), 1) for ti, r in zip(t, rss, strict=True)}
    print("service RSS (MiB) by minute:", json.dumps(rss_by_minute))
    assert code == 0, svc.output()[-3000:]
    assert last[4] > MONKEYS * SOAK_S / 4, "the monkeys did not run"
    assert largest <= MAX_BYTES + max(per_flush, 1 << 20), figures
    assert slope is not None and slope <= RSS_GOAL_MIB_PER_MIN, figures


@pytest.mark.parametrize("rows", [1_000_000])
def test_metrics_cost_per_event(tmp_path, rows):
    from library.artifacts import Operation
    from library.eventstore import PartitionedRecorder
    from library.service.metrics import EventTally

    def run(tally: EventTally | None) -> tuple[float, float]:
        rec = PartitionedRecorder(tmp_path / ("with" if tally else "without"), "f", "HTTPLoop")
        tally_s = 0.0
        if tally is not None:

            def timed_tap(recorder) -> None:
                nonlocal tally_s
                t0 = time.thread_time()
                tally.tap(recorder)
                tally_s += time.thread_time() - t0

            rec.taps.append(timed_tap)
        channel = rec.channel(Operation.HTTP_REQUEST, "bot-1", "/")
        ok = channel.ok
        # CPU of this thread (the monkeys' loop's), not wall time: other processes on the
        # machine and the Parquet writer thread do not count.
        begin = time.thread_time()
        for i in range(rows):
            ok(1_796_000_000_000_000 + i, 1000 + (i & 1023))
            if tally is not None and i % 30_000 == 29_999:
                t0 = time.thread_time()
                tally.catch_up(rec)
                tally_s += time.thread_time() - t0
        total = time.thread_time() - begin
        rec.close()
        return total, tally_s

    best = {"without": float("inf"), "with": float("inf"), "tally": float("inf")}
    for _ in range(3):
        without, _ = run(None)
        tally = EventTally()
        with_tally, tally_s = run(tally)
        assert int(tally.ok.sum()) == rows  # every event counted once
        best["without"] = min(best["without"], without)
        best["with"] = min(best["with"], with_tally)
        best["tally"] = min(best["tally"], tally_s)
    ns = {k: round(v / rows * 1e9, 1) for k, v in best.items()}
    print(
        f"\nmetrics cost: recording {ns['without']} ns/event without the tally, {ns['with']} "
        f"with it (of which the tally's catch-ups {ns['tally']} ns/event, off the hot path)"
    )
