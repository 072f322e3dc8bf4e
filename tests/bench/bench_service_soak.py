"""The standing service over time, and what its metrics cost the monkeys.

1. Soak: `service run` with 2,000 HTTPLoop monkeys (idle 1 s) against nginx's instant `200` on
   127.0.0.1 for 10 minutes (BOSUN_SOAK_S), /metrics scraped and /summary read every 5 s as
   Prometheus and an operator would. Measured from outside with psutil: the service's RSS
   slope after a 2-minute warm-up (least squares, MiB/min; goal <= 1 MiB/min), and the events
   directory against the retention set (max_age 5 min, max_bytes 4 MiB, checked every 20 s):
   its size must stay within max_bytes plus one flush of events.
2. Hours ending: the service's upkeep (compaction of the hour that ended, then retention,
   then `malloc_trim`, as `library.service.observe` does it) over HOURS hours of 600,000
   events each (the soak's rate for the 5 minutes its retention keeps, the last flush of
   each across the hour's end, into two partitions), in a fresh process
   set up as the service sets itself up (`Recorder.prepare`: Arrow on the C allocator).
   The soak crosses at most one hour boundary, and only when it happens to start late in
   an hour; this crosses six every run. Its RSS after the last hour against before the
   first (goal <= 8 MiB), next to the same process on Arrow's default allocator (mimalloc),
   the anchor: it keeps its high-water mark, 30-odd MiB after the first compaction.
3. Metrics cost: 1,000,000 events through `Channel.ok` (HTTPLoop's path) into the service's
   recorder with and without the metrics tally, the tally catching up every 30,000 events
   (a scrape) and at each flush; CPU ns per event of the recording thread for each, and the
   tally's own share (best of 3 rounds each).

Run with `pytest tests/bench/bench_service_soak.py -s -o python_files='bench_*.py'`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

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


HOURS = 6
COMPACTION_GROWTH_GOAL_MIB = 8.0


def _hours_ending(root: str, pool: str, out: Any) -> None:
    """In a fresh process: HOURS hours of events, each compacted and trimmed as the
    service's upkeep does; puts [RSS MiB before the first, after each] on OUT."""
    import concurrent.futures
    import gc

    import pyarrow as pa

    from library.eventstore import HOUR_US, EventStore, PartitionedRecorder
    from library.memory import malloc_trim

    if pool == "system":
        PartitionedRecorder(root, flock="soak", business="HTTPLoop").prepare()
    proc = psutil.Process()
    trim = malloc_trim()
    upkeep = concurrent.futures.ThreadPoolExecutor(1)  # the service's asyncio.to_thread
    store = EventStore(root)
    rng = np.random.default_rng(0)
    monkeys = pa.DictionaryArray.from_arrays(
        pa.array(np.arange(20_000, dtype=np.int32) % MONKEYS),
        pa.array([f"bot-mobu-soak{i:04d}" for i in range(MONKEYS)]),
    )
    base = (int(time.time() * 1e6) // HOUR_US - HOURS - 1) * HOUR_US

    def flush(first_us: int) -> None:  # 10 s of events at 2,000/s
        rec = PartitionedRecorder(root, flock="soak", business="HTTPLoop")
        rec.write_columns(
            {
                "start_us": first_us + np.sort(rng.integers(0, 10_000_000, 20_000)),
                "duration_us": rng.integers(100, 5000, 20_000),
                "success": np.ones(20_000, bool),
                "operation": "http_request",
                # Codes and names, as the recorder's own: a list of strings would be
                # dictionary-encoded by Arrow's compute functions, loading them here.
                "monkey": monkeys,
            }
        )
        rec.close()

    flush(base - HOUR_US)  # the writer warmed up, as at the service's start
    gc.collect()
    trim(0)
    series = [proc.memory_info().rss / 2**20]
    for hour in range(HOURS):
        end = base + (hour + 1) * HOUR_US
        # The hour's last 5 minutes (what the retention keeps), the last flush across its end
        # into the next hour's partition, as the service's flush at the boundary.
        for k in range(30):
            flush(end - 295_000_000 + k * 10_000_000)
        gc.collect()
        trim(0)
        upkeep.submit(store.compact, end).result()
        upkeep.submit(store.enforce, 300.0, MAX_BYTES).result()
        trim(0)
        series.append(proc.memory_info().rss / 2**20)
    out.put((series, "pyarrow.compute" in sys.modules))


def test_hours_ending_keep_rss_flat(tmp_path, monkeypatch):
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    figures = {}
    for pool in ("mimalloc", "system"):
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", pool)  # read as the child loads pyarrow
        queue = spawn.Queue()
        child = spawn.Process(target=_hours_ending, args=(str(tmp_path / pool), pool, queue))
        child.start()
        series, compute_loaded = queue.get(timeout=600)
        child.join(60)
        assert child.exitcode == 0
        figures[pool] = {
            "rss_mib_before_first": round(series[0], 1),
            "rss_mib_after_each_hour": [round(x, 1) for x in series[1:]],
            "growth_mib": round(series[-1] - series[0], 1),
            "pyarrow_compute_loaded": compute_loaded,
        }
    print("\nhours ending (compaction + retention + trim):", json.dumps(figures, indent=1))
    assert figures["system"]["growth_mib"] <= COMPACTION_GROWTH_GOAL_MIB, figures


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
