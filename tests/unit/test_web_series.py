"""The web page's chart series from the hour partitions (library/service/web/series.py):
counts and failures exact per bucket, percentiles within a histogram bin, each file read
once, files removed by retention forgotten, other flocks and lifecycle rows left out."""

from __future__ import annotations

import time

import numpy as np

from library.eventstore import EventStore, PartitionedRecorder
from library.service.web import series as s

LIFECYCLE = {"monkey_start", "monkey_stop"}


def record(rec, flock: str, op: str, start_s: float, duration_ms: float, ok: bool = True):
    rec.record(
        op,
        int(start_s * 1e6),
        int(duration_ms * 1000),
        ok,
        monkey="m1",
        flock=flock,
        business="EmptyLoop",
    )


def test_series_counts_failures_and_percentiles(tmp_path, monkeypatch):
    now = time.time()
    rec = PartitionedRecorder(tmp_path / "events")
    base = now - 600
    for i in range(1000):  # 1,000 executions over 100 s, 10 ms .. 1 s
        record(rec, "a", "empty_loop", base + i * 0.1, 10 + i * 0.99, ok=i % 10 != 0)
    record(rec, "a", "monkey_start", base, 0)
    record(rec, "b", "empty_loop", base, 5000)  # another flock
    rec.flush()
    store = EventStore(tmp_path / "events")
    cache = s.SeriesCache()
    calls = []
    real = s.summarise
    monkeypatch.setattr(s, "summarise", lambda p: calls.append(p) or real(p))
    out = cache.series(store, "a", "empty_loop", LIFECYCLE, 900, now)
    assert out["bucket_s"] == 10 and len(out["time"]) == 90
    assert out["events"] == 1000
    assert round(sum(out["failures"]) * out["bucket_s"]) == 100
    assert abs(sum(out["rate"]) * out["bucket_s"] - 1000) < 1e-6
    # Percentiles of one bucket: within a bin (18 %) of the exact figure.
    busiest = int(np.argmax(out["rate"]))
    t0 = out["time"][busiest] - out["bucket_s"] / 2
    durations = [10 + i * 0.99 for i in range(1000) if t0 <= base + i * 0.1 < t0 + 10]
    exact = float(np.percentile(durations, 95, method="inverted_cdf"))
    assert abs(out["p95_ms"][busiest] - exact) / exact < 0.2
    assert out["p50_ms"][busiest] <= out["p95_ms"][busiest] <= out["p99_ms"][busiest]
    # Read once: a second call reads no file again; a new flush reads only the new file.
    read = len(calls)  # one file per hour partition the flush wrote into
    assert read == len(store.files())
    cache.series(store, "a", "empty_loop", LIFECYCLE, 900, now)
    assert len(calls) == read
    record(rec, "a", "empty_loop", now - 5, 20)
    rec.flush()
    again = cache.series(store, "a", "empty_loop", LIFECYCLE, 900, now)
    assert len(calls) == read + 1 and again["events"] == 1001
    # Files gone (retention) are forgotten.
    for path in store.files():
        path.unlink()
    assert cache.series(store, "a", "empty_loop", LIFECYCLE, 900, now)["events"] == 0
    assert cache._files == {}


def test_bucket_widths():
    assert s.bucket_seconds(900) == 10 and s.bucket_seconds(604800) == 5040


def test_a_flock_without_its_main_operation_shows_its_most_frequent(tmp_path):
    now = time.time()
    rec = PartitionedRecorder(tmp_path / "events")
    for i in range(5):
        record(rec, "a", "http_get", now - 100 + i, 3)
    rec.flush()
    out = s.SeriesCache().series(
        EventStore(tmp_path / "events"), "a", "execute_code", LIFECYCLE, 3600, now
    )
    assert out["operation"] == "http_get" and out["events"] == 5
    assert [v for v in out["p50_ms"] if v is not None]
