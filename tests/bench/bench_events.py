"""Recording cost per timing event and bytes on disk per million events.

Anchor: `list.append(tuple)` of the same five values, measured in the same run (FACTS: 0.04 µs).
The recorder's figure includes turning the columns into Parquet (amortised per event), so it is
the whole cost a run pays, not only the append; the load engine's spooling recorder is measured
the same way, its encoding after the load included. Goals: <= 1 µs per event, <= 10 MB per million.
Run with `make bench` or `pytest tests/bench/bench_events.py -s`.
"""

from __future__ import annotations

import os
import random
import time

from library.events import Recorder, read_events

N = 1_000_000


def _inputs():
    rng = random.Random(7)
    monkeys = [f"bot-scale-user{i:05d}" for i in range(1000)]
    ops = ["http_request"] * 8 + ["tap_query", "execute_code"]
    start = 1_795_000_000_000_000
    rows = []
    for i in range(N):
        start += rng.randrange(0, 200)
        ok = rng.random() > 0.01
        rows.append(
            (
                ops[i % 10],
                start,
                int(rng.lognormvariate(10, 0.6)),
                ok,
                monkeys[rng.randrange(1000)],
                "" if ok else "TimeoutError",
                "" if ok else "GET /api: timed out after 30 s",
            )
        )
    return rows


def _anchor(rows) -> float:
    out = []
    append = out.append
    t0 = time.perf_counter()
    for op, start, dur, ok, monkey, _, _ in rows:
        append((op, start, dur, ok, monkey))
    return (time.perf_counter() - t0) / N


def _recorder(rows, out_dir) -> tuple[float, int]:
    rec = Recorder(out_dir, flock="bench", business="HTTPLoop")
    record = rec.record
    t0 = time.perf_counter()
    for op, start, dur, ok, monkey, error_class, error in rows:
        record(op, start, dur, ok, monkey, "/api", error_class, error)
    rec.close()
    elapsed = time.perf_counter() - t0
    size = sum(os.path.getsize(p) for p in rec.files)
    return elapsed / N, size


def _channels(rows, out_dir, spool: bool = False) -> float:
    """The monkeys' own path: each monkey holds its `Recorder.channel` (made once at startup,
    as HTTPLoop does), so the rows are paired with their channel before the clock starts;
    failures go through `Channel.fail`. With `spool`, the load engine's recorder: raw chunks
    during the load, encoded to Parquet by `close` (timed too)."""
    rec = Recorder(out_dir, flock="bench", business="HTTPLoop", spool=spool)
    channels: dict = {}
    paired = [
        (
            channels.get((op, monkey))
            or channels.setdefault((op, monkey), rec.channel(op, monkey, "/api")),
            start,
            dur,
            ok,
        )
        for op, start, dur, ok, monkey, _, _ in rows
    ]
    error = TimeoutError("GET /api: timed out after 30 s")
    t0 = time.perf_counter()
    for channel, start, dur, ok in paired:
        if ok:
            channel.ok(start, dur, 0)
        else:
            channel.fail(start, dur, error, 0)
    rec.close()
    return (time.perf_counter() - t0) / N


def test_recording_cost_and_size(tmp_path):
    rows = _inputs()
    anchors, costs, channel_costs, spool_costs = [], [], [], []
    for attempt in range(3):
        anchors.append(_anchor(rows))
        cost, size = _recorder(rows, tmp_path / f"events{attempt}")
        costs.append(cost)
        channel_costs.append(_channels(rows, tmp_path / f"channel{attempt}"))
        spool_costs.append(_channels(rows, tmp_path / f"spool{attempt}", spool=True))
    anchor, cost, channel_cost = min(anchors), min(costs), min(channel_costs)
    spool_cost = min(spool_costs)
    assert read_events(tmp_path / "events0").num_rows == N
    assert read_events(tmp_path / "spool0").equals(read_events(tmp_path / "channel0"))
    print(
        f"\nevents: {N:,} rows, best of 3"
        f"\n  anchor list.append(tuple)   {anchor * 1e6:6.3f} µs/event"
        f"\n  Recorder.record + Parquet   {cost * 1e6:6.3f} µs/event"
        f"  = {cost / anchor:4.1f}x anchor   (goal <= 1 µs)"
        f"\n  Channel.ok/fail + Parquet     {channel_cost * 1e6:6.3f} µs/event"
        f"  = {channel_cost / anchor:4.1f}x anchor"
        f"\n  Channel + spool, encoded     {spool_cost * 1e6:6.3f} µs/event"
        f"  = {spool_cost / anchor:4.1f}x anchor   (the load engine's recorder)"
        f"\n  on disk                      {size / 1e6:6.2f} MB per million events"
        f"   (goal <= 10 MB)"
    )
