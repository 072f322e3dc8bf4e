"""Intended vs achieved: the monkeys' schedule, the lag they record, the corrected figures.

The acceptance case is a real local HTTP server (aiohttp, on 127.0.0.1) that freezes for 2 s
once while HTTPLoop monkeys request it every ~10 ms: the measured latencies hide the freeze
(each monkey had one request in flight), the latencies from the intended start do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import numpy as np
import pytest

from library.events import read_events
from library.flock.businesses.base import Business
from library.flock.engine import RunSettings, run_flocks
from library.flock.models import parse_flocks
from library.flock.monkey import Schedule
from library.flock.summary import build_summary
from library.stats import BEHIND_SCHEDULE_PCT, operation_stats, schedule_rates, table_stats

MS = 1_000_000  # ns


def test_on_time_the_schedule_is_mobus_run_then_idle():
    schedule = Schedule(1.0)
    intended = 0
    for _ in range(5):
        # Each execution starts on time and takes 50 ms: the next is meant 1 s after its end.
        intended = schedule.next_start(intended, 50 * MS) if intended else 50 * MS + 1000 * MS
    assert schedule.period_s == pytest.approx(1.05)


def test_a_stall_is_lateness_not_a_new_plan():
    schedule = Schedule(0.01)
    intended = 0
    for _ in range(20):
        intended = schedule.next_start(intended, 1 * MS)
    before = intended
    # One execution takes 2 s: the plan moves on by at most twice the typical duration.
    intended = schedule.next_start(intended, 2000 * MS)
    assert intended - before <= 2 * MS + 10 * MS
    # Durations that stay longer are followed (a slower platform is a new normal).
    for _ in range(60):
        intended = schedule.next_start(intended, 8 * MS)
    assert schedule.typical_ns == pytest.approx(8 * MS, rel=0.05)


def test_rates_per_monkey_and_the_behind_schedule_flag():
    """Two monkeys meant to start every 1 s; one kept up, the other slipped 0.2 s per cycle."""
    n = 11
    intended = np.arange(n, dtype=np.int64) * 1_000_000
    on_time = intended + 500  # a constant wake-up delay does not lose any execution
    slipping = intended + np.arange(n) * 200_000
    start = np.concatenate([on_time, slipping])
    lag = start - np.concatenate([intended, intended])
    monkeys = np.repeat([0, 1], n)
    intended_rate, achieved_rate = schedule_rates(np.zeros(2 * n, int), 1, monkeys, start, lag)
    assert intended_rate[0] == pytest.approx(2.0)
    assert achieved_rate[0] == pytest.approx(1.0 + 1 / 1.2)
    rows = operation_stats(
        np.zeros(2 * n, int),
        ["f"],
        np.zeros(2 * n, int),
        ["http_request"],
        np.ones(2 * n, bool),
        np.full(2 * n, 1000),
        lag,
        start_us=start,
        monkey_codes=monkeys,
    )
    (row,) = rows
    assert row.achieved_pct == pytest.approx(100 * (1 + 1 / 1.2) / 2, abs=0.01)
    assert row.achieved_pct < BEHIND_SCHEDULE_PCT and row.behind_schedule is True
    # Corrected latency is lag + duration: the slipping monkey's last start was 2 s late.
    assert row.corrected_max_ms == pytest.approx(2001.0)
    assert row.max_ms == pytest.approx(1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def freezing_server(freeze_after_s: float, freeze_s: float):
    """A local HTTP server answering at once, except that every request arriving in the
    window [first request + freeze_after_s, + freeze_s] is held until the window ends."""
    from aiohttp import web

    port = _free_port()
    state: dict = {"first": None}
    ready = threading.Event()

    async def handler(request):
        now = time.monotonic()
        if state["first"] is None:
            state["first"] = now
        begin = state["first"] + freeze_after_s
        if begin <= now < begin + freeze_s:
            await asyncio.sleep(begin + freeze_s - now)
        return web.Response(text="ok")

    async def serve(stop: asyncio.Event):
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(stop),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_a_server_that_freezes_once_shows_in_the_corrected_percentiles(tmp_path):
    freeze_s, run_s, idle_s = 2.0, 5.0, 0.01
    with freezing_server(freeze_after_s=1.5, freeze_s=freeze_s) as url:
        flocks = parse_flocks(
            [
                {
                    "name": "http",
                    "count": 10,
                    "user_spec": {"username_prefix": "bot-s"},
                    "scopes": [],
                    "business": {
                        "type": "HTTPLoop",
                        "options": {"url": url, "idle_time": idle_s, "timeout": 30},
                    },
                }
            ]
        )
        result = run_flocks(
            flocks, tmp_path, RunSettings(duration=run_s, live=False, handle_signals=False)
        )
    table = read_events(tmp_path)
    (row,) = [r for r in table_stats(table) if r.operation == "http_request"]
    assert row.failures == 0
    # Each monkey had one request in flight during the freeze: well under 1 % of its requests.
    assert row.p99_ms < 500
    # From the intended starts, the requests the monkeys meant to send during the freeze waited
    # up to the whole freeze: latencies spread evenly over (0, 2 s], one per intended slot,
    # so p99 is at least freeze - 1 % of the run (the share of slots above it), less slack
    # for the monkeys' typical duration and a loaded machine.
    assert row.corrected_max_ms >= 0.97 * freeze_s * 1000
    assert row.corrected_p99_ms >= (freeze_s - 0.01 * run_s) * 1000 * 0.9
    assert row.lag_max_ms >= 0.9 * freeze_s * 1000
    # Whether they caught up by the end depends on the machine's spare CPU (a saturated loop
    # does not burst to catch up), so only the figures' presence and agreement are checked.
    summary = build_summary(tmp_path, flocks, result.start, result.end)
    figures = summary["flocks"]["http"]["operations"]["http_request"]
    assert figures["corrected_p99_ms"] == row.corrected_p99_ms
    assert figures["intended_per_s"] == row.intended_per_s > 0
    assert figures["behind_schedule"] is row.behind_schedule


def test_a_flock_without_idle_time_is_not_scheduled(tmp_path):
    with freezing_server(freeze_after_s=100, freeze_s=0) as url:
        flocks = parse_flocks(
            [
                {
                    "name": "http",
                    "count": 3,
                    "user_spec": {"username_prefix": "bot-s"},
                    "scopes": [],
                    "business": {"type": "HTTPLoop", "options": {"url": url, "idle_time": 0}},
                }
            ]
        )
        run_flocks(flocks, tmp_path, RunSettings(duration=0.5, live=False, handle_signals=False))
    table = read_events(tmp_path)
    assert table.num_rows > 10
    assert not any(table.column("lag_us").to_pylist())
    (row,) = [r for r in table_stats(table) if r.operation == "http_request"]
    assert row.corrected_p99_ms is None and row.intended_per_s is None


class Blocking(Business):
    """Blocks the event loop for 5 ms per execution: 40 monkeys meaning to start every 15 ms
    cannot all be served by one loop, so every one of them falls behind its schedule."""

    async def execute(self):
        with self.ctx.timed("fake_op"):
            time.sleep(0.005)
        return False


def test_a_flock_that_cannot_keep_its_schedule_is_flagged_everywhere(tmp_path, monkeypatch):
    from library.flock import businesses, live, monkey
    from library.flock.engine import Engine
    from library.flock.options import BusinessOptions
    from library.flock.summary import flock_figures, summary_text

    monkeypatch.setitem(
        businesses.REGISTRY,
        "Blocking",
        businesses.Entry(BusinessOptions, "unused:Blocking", "fake_op", "none"),
    )
    real = monkey.business_class
    monkeypatch.setattr(
        monkey, "business_class", lambda name: Blocking if name == "Blocking" else real(name)
    )
    flocks = parse_flocks(
        [
            {
                "name": "busy",
                "count": 40,
                "user_spec": {"username_prefix": "bot-s"},
                "scopes": [],
                "business": {"type": "Blocking", "options": {"idle_time": 0.01}},
            }
        ]
    )
    engine = Engine(flocks, tmp_path, RunSettings(duration=2.5, live=False, handle_signals=False))
    seen = {}

    async def run_and_look():
        async def look():
            await asyncio.sleep(0.3)
            engine.stats["busy"].schedule_figures()  # sets the mark: achieved is since then
            await asyncio.sleep(1.2)
            seen.update(engine.stats["busy"].schedule_figures())
            seen["line"] = live.status_line(engine)

        looker = asyncio.create_task(look())
        result = await engine.run()
        await looker
        return result

    result = asyncio.run(run_and_look())
    # While running: the monkeys' plans add up to far more than one blocked loop delivers.
    assert seen["behind_schedule"] is True, seen
    assert seen["achieved_per_s"] < 0.95 * seen["intended_per_s"]
    assert "BEHIND SCHEDULE" in seen["line"]
    # After: the same verdict from the events, in summary.json, summary.txt and the last line.
    summary = build_summary(tmp_path, flocks, result.start, result.end)
    figures = summary["flocks"]["busy"]["operations"]["fake_op"]
    assert figures["behind_schedule"] is True
    assert figures["achieved_pct"] < BEHIND_SCHEDULE_PCT
    assert figures["corrected_p99_ms"] > figures["p99_ms"]
    assert "⚠ behind schedule: busy/fake_op" in summary_text(summary)
    assert "BEHIND SCHEDULE" in live.status_line(engine, flock_figures(tmp_path, flocks))


class StallsOnce(Business):
    """1 ms per execution, except the fifth, which takes 0.5 s (the loop stays free)."""

    async def execute(self):
        with self.ctx.timed("fake_op"):
            self.executions += 1
            await asyncio.sleep(0.5 if self.executions == 5 else 0.001)
        return False


def test_after_a_stall_a_monkey_catches_up_without_idling(tmp_path, monkeypatch):
    from library.flock import businesses, monkey
    from library.flock.options import BusinessOptions

    monkeypatch.setitem(
        businesses.REGISTRY,
        "StallsOnce",
        businesses.Entry(BusinessOptions, "unused:StallsOnce", "fake_op", "none"),
    )
    real = monkey.business_class
    monkeypatch.setattr(
        monkey, "business_class", lambda name: StallsOnce if name == "StallsOnce" else real(name)
    )
    flocks = parse_flocks(
        [
            {
                "name": "f",
                "count": 3,
                "user_spec": {"username_prefix": "bot-s"},
                "scopes": [],
                "business": {"type": "StallsOnce", "options": {"idle_time": 0.02}},
            }
        ]
    )
    run_flocks(flocks, tmp_path, RunSettings(duration=2.0, live=False, handle_signals=False))
    rows = [r for r in read_events(tmp_path).to_pylist() if r["operation"] == "fake_op"]
    for user in {r["monkey"] for r in rows}:
        lags = [
            r["lag_us"] for r in sorted(rows, key=lambda r: r["start_us"]) if r["monkey"] == user
        ]
        # The execution after the stall starts ~0.5 s late against the plan ...
        assert max(lags[5:8]) >= 400_000
        # ... and the monkey runs without idling until it is back on its plan.
        assert lags[-1] < 100_000, lags
