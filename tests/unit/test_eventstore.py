"""The service's events store: hour partitions, time-range reads, compaction, retention by
age and by size, and windowed summaries over a synthetic history whose answer is known."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from library.events import read_events, schema
from library.eventstore import HOUR_US, EventStore, PartitionedRecorder, partition_of
from library.service.observe import compute_window_stats

REPO = Path(__file__).resolve().parents[2]
NOW_S = 1_796_025_200  # 2026-11-30 07:53:20 UTC
NOW_US = NOW_S * 1_000_000


def write(root, start_us, duration_us, success, flock="f", operation="op"):
    rec = PartitionedRecorder(root, flock=flock, business="EmptyLoop")
    n = len(start_us)
    rec.write_columns(
        {
            "start_us": np.asarray(start_us, np.int64),
            "duration_us": np.asarray(duration_us, np.int64),
            "success": np.asarray(success, bool),
            "operation": operation,
            "monkey": [f"bot-{i % 3}" for i in range(n)],
        }
    )
    rec.close()


def test_rows_go_to_the_hour_of_their_start(tmp_path):
    rec = PartitionedRecorder(tmp_path, flock="f", business="EmptyLoop")
    # One flush whose rows straddle an hour boundary (a monkey_stop dated at its start).
    boundary = (NOW_US // HOUR_US) * HOUR_US
    rec.record("op", boundary - 1_000, 10, monkey="a")
    rec.record("op", boundary + 1_000, 10, monkey="b")
    rec.record("op", boundary - 5 * HOUR_US, 10, monkey="c")
    rec.close()
    store = EventStore(tmp_path)
    names = [str(p.path.relative_to(tmp_path)) for p in store.partitions()]
    assert names == [
        partition_of(boundary - 5 * HOUR_US),
        partition_of(boundary - 1_000),
        partition_of(boundary),
    ]
    assert partition_of(boundary) == "date=2026-11-30/hour=07"
    # Every row once, in the events schema; the engine's reader reads the tree too.
    table = store.read()
    assert table.schema == schema()
    assert sorted(table.column("monkey").to_pylist()) == ["a", "b", "c"]
    assert read_events(tmp_path).num_rows == 3


def test_range_reads_only_that_time(tmp_path):
    starts = [NOW_US - k * 600_000_000 for k in range(12)]  # every 10 min over 2 h
    write(tmp_path, starts, [1000] * 12, [True] * 12)
    store = EventStore(tmp_path)
    since, until = NOW_US - 3_600_000_000, NOW_US - 1_200_000_000
    got = store.read(since, until, ["start_us"]).column("start_us").to_pylist()
    assert sorted(got) == sorted(s for s in starts if since <= s < until)
    assert len(got) == 4
    # Partitions outside the range are not even opened.
    assert all(p.parent.name in {"hour=07", "hour=06"} for p in store.files(since, until))


def test_compaction_keeps_every_row_in_one_file(tmp_path):
    old = NOW_US - 3 * HOUR_US
    for k in range(5):
        write(tmp_path, [old + k], [k], [True])
    store = EventStore(tmp_path)
    assert len(store.files()) == 5
    assert store.compact(NOW_US) == 4
    files = store.files()
    assert len(files) == 1 and files[0].name.startswith("compact-")
    assert sorted(store.read().column("duration_us").to_pylist()) == [0, 1, 2, 3, 4]


def test_compaction_streams_the_files_and_keeps_their_age(tmp_path):
    old = NOW_US - 3 * HOUR_US
    for k in range(4):
        write(tmp_path, [old + k, old + k + 10], [k, k], [True, False])
    store = EventStore(tmp_path)
    for k, path in enumerate(store.files()):
        os.utime(path, (NOW_S - 3 * 3600 + k, NOW_S - 3 * 3600 + k))
    assert store.compact(NOW_US) == 3
    (merged,) = store.files()
    # A row group per merged file: one file was read at a time, not the hour at once.
    assert pq.ParquetFile(merged).metadata.num_row_groups == 4
    assert store.read().num_rows == 8
    # Retention by age reads the mtime as the last event's time: the newest merged file's.
    assert merged.stat().st_mtime == NOW_S - 3 * 3600 + 3


def test_retention_by_age_removes_old_partitions_and_files(tmp_path):
    write(tmp_path, [NOW_US - 40 * 86400 * 10**6], [1], [True])  # 40 days old
    write(tmp_path, [NOW_US - 2 * 86400 * 10**6], [1], [True])  # 2 days old
    write(tmp_path, [NOW_US - 60 * 10**6], [1], [True])  # a minute old
    store = EventStore(tmp_path)
    assert len(store.partitions()) == 3
    result = store.enforce(max_age_s=30 * 86400, max_bytes=None, now=NOW_S)
    assert result.removed_files == 1
    assert [p.path.parent.name for p in store.partitions()] == [
        "date=2026-11-28",
        "date=2026-11-30",
    ]
    assert not (tmp_path / "date=2026-10-21").exists()  # the empty day dir goes too
    # Inside a partition that is still young, a file whose events are all older goes.
    recent = store.files()[-1]
    os.utime(recent, (NOW_S - 7200, NOW_S - 7200))
    store.enforce(max_age_s=3600, max_bytes=None, now=NOW_S)
    assert recent not in store.files()


def test_retention_by_size_removes_the_oldest_first(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(6):  # six files, oldest first, each of random (incompressible) durations
        start = NOW_US - (6 - k) * 600 * 10**6
        write(tmp_path, np.full(2000, start), rng.integers(0, 2**40, 2000), np.ones(2000, bool))
    store = EventStore(tmp_path)
    files, total = store.size()
    assert files == 6
    sizes = {p: p.stat().st_size for p in store.files()}
    limit = total // 2
    result = store.enforce(max_age_s=None, max_bytes=limit, now=NOW_S)
    kept = store.files()
    assert result.kept_bytes <= limit and store.size() == (len(kept), result.kept_bytes)
    assert result.removed_files == 6 - len(kept) >= 3
    # What is left is the newest files, in order.
    assert kept == sorted(sizes, key=lambda p: p.name)[-len(kept) :]
    # The newest file stays even when it alone is over the limit.
    store.enforce(max_age_s=None, max_bytes=1, now=NOW_S)
    assert len(store.files()) == 1


def test_windowed_summaries_over_a_known_history(tmp_path):
    """Last hour: 100 events of 1..100 ms, 10 failed. One to two hours ago: 100 events of
    1 s, all failed. 30 hours ago: 50 events of 5 ms. The right answers are computed by hand."""
    hour = [NOW_US - 3_000_000_000 + k * 1000 for k in range(100)]
    write(tmp_path, hour, [(k + 1) * 1000 for k in range(100)], [k >= 10 for k in range(100)])
    write(tmp_path, [NOW_US - 5_400_000_000] * 100, [1_000_000] * 100, [False] * 100)
    write(tmp_path, [NOW_US - 30 * 3_600_000_000] * 50, [5000] * 50, [True] * 50)
    store = EventStore(tmp_path)

    last_hour = compute_window_stats(store, NOW_US - 3_600_000_000, NOW_US)
    (op,) = last_hour["operations"]
    assert (op["count"], op["failures"], op["success_pct"]) == (100, 10, 90.0)
    # Linear interpolation between closest ranks: p50 of 1..100 is 50.5, p95 95.05, p99 99.01.
    assert (op["p50_ms"], op["p95_ms"], op["p99_ms"], op["max_ms"]) == (50.5, 95.05, 99.01, 100.0)
    assert last_hour["flocks"] == {"f": {"count": 100, "failures": 10, "success_pct": 90.0}}

    day = compute_window_stats(store, NOW_US - 86_400_000_000, NOW_US)
    (op,) = day["operations"]
    assert (op["count"], op["failures"], op["success_pct"]) == (200, 110, 45.0)
    assert op["p50_ms"] == 550.0  # between the 100th (100 ms) and 101st (1000 ms) values
    assert op["max_ms"] == 1000.0

    everything = compute_window_stats(store, 0, None)
    assert everything["events"] == 250
    assert everything["operations"][0]["success_pct"] == round(100 * 140 / 250, 3)


@pytest.mark.parametrize("hours", [1, 3])
def test_partition_start_round_trips(tmp_path, hours):
    start = (NOW_US // HOUR_US - hours) * HOUR_US
    write(tmp_path, [start + 5], [1], [True])
    (part,) = EventStore(tmp_path).partitions()
    assert part.start_us == start and time.gmtime(start / 1e6).tm_hour == int(part.path.name[5:])


def test_windowed_summary_of_many_events_is_sampled_with_exact_counts(tmp_path):
    """Above max_rows, percentiles come from every k-th event; counts stay exact."""
    n = 60_000
    starts = NOW_US - 1_800_000_000 + np.arange(n) * 10_000
    durations = (np.arange(n) % 1000 + 1) * 1000  # 1..1000 ms, evenly
    write(tmp_path, starts, durations, np.arange(n) % 10 != 0)  # 10 % failed
    write(tmp_path, starts[:50], np.full(50, 7), np.ones(50, bool), operation="other")
    store = EventStore(tmp_path)
    assert store.count_rows() == n + 50
    exact = compute_window_stats(store, NOW_US - 3_600_000_000, NOW_US)
    sampled = compute_window_stats(store, NOW_US - 3_600_000_000, NOW_US, max_rows=6_000)
    assert exact["sampled"] is None
    assert sampled["sampled"] == {"every": 11, "rows": 5_460}  # ceil(60,050 / 6,000)
    ops = {o["operation"]: o for o in sampled["operations"]}
    assert (ops["op"]["count"], ops["op"]["failures"], ops["op"]["success_pct"]) == (n, 6000, 90.0)
    assert ops["other"]["count"] == 50 and sampled["events"] == exact["events"] == n + 50
    (full,) = [o for o in exact["operations"] if o["operation"] == "op"]
    assert full["p50_ms"] == 500.5
    for q in ("p50_ms", "p95_ms", "p99_ms"):  # the sample's percentiles are close
        assert abs(ops["op"][q] - full[q]) <= 0.02 * full[q], q
    assert sampled["flocks"] == exact["flocks"]


def test_a_flush_across_an_hour_and_window_reads_leave_arrow_compute_unloaded(tmp_path):
    """Arrow's compute functions stay in a process for good once loaded (~10 MiB): the
    service's first flush across an hour boundary loaded them, a step in its memory."""
    import subprocess
    import sys

    code = f"""
import sys
from library.eventstore import HOUR_US, EventStore, PartitionedRecorder
rec = PartitionedRecorder({str(tmp_path)!r}, flock="f", business="EmptyLoop")
rec.prepare()
boundary = ({NOW_US} // HOUR_US) * HOUR_US
for k, start in enumerate([boundary - 2000, boundary + 1000, boundary - 1000, boundary + 2000]):
    rec.record("op", start, 10, monkey=f"bot-{{k}}")
rec.close()
store = EventStore({str(tmp_path)!r})
table = store.read(boundary - 1500, boundary + 1500)
print(sorted(table.column("start_us").to_pylist()) == [boundary - 1000, boundary + 1000])
sample, counts = store.read_sample(None, None, ["start_us", "monkey"], 2)
print(sample.num_rows == 2 and counts == {{("f", "op"): [4, 0]}})
print("pyarrow.compute" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    assert out == ["True", "True", "False"]
    assert len(EventStore(tmp_path).partitions()) == 2
