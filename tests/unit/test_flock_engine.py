"""The engine with businesses faked at the business boundary: restart, failures, stopping."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from library.events import read_events
from library.flock import businesses, monkey
from library.flock.businesses.base import Business
from library.flock.engine import Engine, RunSettings, run_flocks
from library.flock.models import parse_flocks
from library.flock.options import BusinessOptions
from library.flock.summary import build_summary, summary_text

CALLS: list[tuple[str, str]] = []


class Scripted(Business):
    """Fails startup for users in FAIL_START, fails its 2nd execution for users in FAIL_EXEC."""

    FAIL_START: set[str] = set()
    FAIL_EXEC: set[str] = set()
    FINISH_AFTER: int | None = None
    STARTUP_S = 0.0

    async def startup(self):
        CALLS.append(("startup", self.ctx.username))
        await asyncio.sleep(self.STARTUP_S)
        if self.ctx.username in self.FAIL_START:
            raise ConnectionError("hub refused the spawn")

    async def execute(self):
        with self.ctx.timed("fake_op"):
            self.executions += 1
            if self.ctx.username in self.FAIL_EXEC and self.executions == 2:
                raise ValueError("second execution fails")
        return self.FINISH_AFTER is not None and self.executions >= self.FINISH_AFTER

    async def shutdown(self):
        CALLS.append(("shutdown", self.ctx.username))


@pytest.fixture(autouse=True)
def scripted(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(
        businesses.REGISTRY,
        "Scripted",
        businesses.Entry(BusinessOptions, "unused:Scripted", "fake_op"),
    )
    real = monkey.business_class
    monkeypatch.setattr(
        monkey, "business_class", lambda name: Scripted if name == "Scripted" else real(name)
    )
    for attr, value in (
        ("FAIL_START", set()),
        ("FAIL_EXEC", set()),
        ("FINISH_AFTER", None),
        ("STARTUP_S", 0.0),
    ):
        monkeypatch.setattr(Scripted, attr, value)


def flocks(count=2, restart=False, business="Scripted", **options):
    options.setdefault("idle_time", 0.01)
    options.setdefault("error_idle_time", 0.05)
    return parse_flocks(
        [
            {
                "name": "f",
                "count": count,
                "user_spec": {"username_prefix": "bot-f0"},
                "scopes": [],
                "business": {"type": business, "restart": restart, "options": options},
            }
        ]
    )


def run(tmp_path, fl, duration=None, **kw):
    result = run_flocks(
        fl, tmp_path, RunSettings(duration=duration, live=False, handle_signals=False, **kw)
    )
    return result, build_summary(tmp_path, fl, result.start, result.end)


def ops(tmp_path, user=None):
    rows = read_events(tmp_path).to_pylist()
    return [r for r in rows if user is None or r["monkey"] == user]


def test_without_restart_a_failing_monkey_stops_and_the_rest_run_on(tmp_path):
    Scripted.FAIL_EXEC = {"bot-f01"}
    result, summary = run(tmp_path, flocks(), duration=0.5)
    assert result.stop_reason == "duration"
    failed = [r["operation"] for r in ops(tmp_path, "bot-f01")]
    assert failed.count("fake_op") == 2 and failed.count("monkey_error") == 1
    assert CALLS.count(("startup", "bot-f01")) == 1  # never restarted
    assert ("shutdown", "bot-f01") in CALLS
    assert [r["operation"] for r in ops(tmp_path, "bot-f02")].count("fake_op") > 5
    flock = summary["flocks"]["f"]
    assert flock["failures"] == 1 and flock["operations"]["fake_op"]["failures"] == 1
    error = next(r for r in ops(tmp_path, "bot-f01") if r["operation"] == "monkey_error")
    assert error["error_class"] == "ValueError" and error["error"] == "second execution fails"


def test_with_restart_a_failing_monkey_starts_again_after_error_idle_time(tmp_path):
    Scripted.FAIL_EXEC = {"bot-f01"}
    run(tmp_path, flocks(restart=True, error_idle_time=0.1), duration=0.75)
    starts = [
        t
        for t in (
            r["start_us"] for r in ops(tmp_path, "bot-f01") if r["operation"] == "monkey_start"
        )
    ]
    assert len(starts) >= 3
    errors = [r for r in ops(tmp_path, "bot-f01") if r["operation"] == "monkey_error"]
    # Each restart waited error_idle_time after the failure before starting again (less the
    # loop's timer resolution: libuv timers count whole milliseconds).
    for err, nxt in zip(errors, starts[1:], strict=False):
        assert nxt - err["start_us"] >= 100_000 - 2_000
    assert CALLS.count(("shutdown", "bot-f01")) >= len(errors)


def test_a_startup_failure_counts_as_a_failure(tmp_path):
    Scripted.FAIL_START = {"bot-f02"}
    _, summary = run(tmp_path, flocks(), duration=0.3)
    rows = ops(tmp_path, "bot-f02")
    assert [r["operation"] for r in rows] == ["monkey_error", "monkey_stop"]
    assert rows[0]["error_class"] == "ConnectionError"
    assert summary["flocks"]["f"]["failures"] == 1
    assert "with 1 failure (" in summary_text(summary)


def test_the_run_ends_when_every_monkey_finished(tmp_path):
    Scripted.FINISH_AFTER = 3
    t0 = time.monotonic()
    result, summary = run(tmp_path, flocks(count=5))
    assert result.stop_reason == "finished" and time.monotonic() - t0 < 5
    assert summary["flocks"]["f"]["successes"] == 15
    assert summary["flocks"]["f"]["success_pct"] == 100.0


@pytest.mark.parametrize("phase", ["idle", "startup", "error_idle"])
def test_stopping_interrupts_every_wait(tmp_path, phase):
    fl = flocks(count=3, restart=True, idle_time=3600, error_idle_time=3600)
    if phase == "startup":
        Scripted.STARTUP_S = 3600
    if phase == "error_idle":
        Scripted.FAIL_START = {"bot-f01", "bot-f02", "bot-f03"}
    t0 = time.monotonic()
    result, _ = run(tmp_path, fl, duration=0.3)
    assert time.monotonic() - t0 < 3
    shutdowns = [u for op, u in CALLS if op == "shutdown"]
    assert sorted(shutdowns) == ["bot-f01", "bot-f02", "bot-f03"]  # each once, none skipped
    stops = [r for r in ops(tmp_path) if r["operation"] == "monkey_stop"]
    assert len(stops) == 3


def test_batched_starts_follow_batch_size_and_wait(tmp_path):
    fl = parse_flocks(
        [
            {
                "name": "f",
                "count": 6,
                "user_spec": {"username_prefix": "bot-f0"},
                "start_batch_size": 2,
                "start_batch_wait": "200ms",
                "scopes": [],
                "business": {"type": "Scripted", "options": {"idle_time": 10}},
            }
        ]
    )
    run(tmp_path, fl, duration=0.8)
    first = {r["monkey"]: r["start_us"] for r in ops(tmp_path) if r["operation"] == "monkey_start"}
    t = [first[f"bot-f0{i}"] for i in range(1, 7)]
    assert t[1] - t[0] < 50_000 and t[3] - t[2] < 50_000
    assert t[2] - t[0] >= 190_000 and t[4] - t[2] >= 190_000


def test_ten_thousand_empty_loop_monkeys_start_and_stop_cleanly(tmp_path):
    fl = parse_flocks(
        [
            {
                "name": "empty",
                "count": 10_000,
                "user_spec": {"username_prefix": "bot-e"},
                "scopes": [],
                "business": {"type": "EmptyLoop", "options": {"idle_time": 1}},
            }
        ]
    )
    before = gc.get_threshold()
    result, summary = run(tmp_path, fl, duration=3)
    assert gc.get_threshold() == before  # raised for the run only
    assert result.monkeys == {"empty": 10_000}
    flock = summary["flocks"]["empty"]
    assert flock["started"] == 10_000 and flock["failures"] == 0
    assert flock["operations"]["monkey_stop"]["count"] == 10_000
    assert flock["successes"] >= 20_000  # every monkey ran more than once


def test_client_bound_is_flagged_when_the_loop_is_blocked(tmp_path):
    class Blocker(Business):
        async def execute(self):
            time.sleep(0.4)  # deliberately blocks the event loop
            return False

    fl = flocks(count=1, idle_time=0.05)
    monkey.business_class = lambda name: Blocker  # restored by the autouse fixture
    _, summary = run(tmp_path, fl, duration=3.5)
    assert summary["client_bound"] is True
    assert "event-loop lag" in summary["client_bound_reason"]
    files = list((tmp_path / "health").glob("*.parquet"))
    assert len(files) == 1


def test_an_idle_run_is_not_client_bound(tmp_path):
    _, summary = run(tmp_path, flocks(count=10, idle_time=0.1), duration=2.5)
    assert summary["client_bound"] is False and summary["client_bound_reason"] is None


def test_signal_handlers_exist_only_during_the_run(tmp_path):
    import signal

    seen = {}

    class Peek(Business):
        async def execute(self):
            loop = asyncio.get_running_loop()
            seen["during"] = signal.SIGINT in loop._signal_handlers
            return True

    monkey.business_class = lambda name: Peek
    original = signal.getsignal(signal.SIGINT)
    # A process started in the background or under nohup ignores SIGINT, and must keep
    # ignoring it after a run (asyncio's own removal would set the default handler).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        engine = Engine(flocks(count=1), tmp_path, RunSettings(live=False))

        async def main():
            await engine.run()
            return signal.SIGINT in asyncio.get_running_loop()._signal_handlers

        after_in_loop = asyncio.run(main())
        assert seen["during"] is True and after_in_loop is False
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, original)


def test_the_live_table_shows_each_flock(tmp_path):
    import io

    from rich.console import Console

    from library.flock.live import _table, snapshot

    engine = Engine(flocks(count=3), tmp_path, RunSettings(live=False))
    engine.started_wall = time.time() - 10
    stats = engine.stats["f"]
    stats.successes, stats.failures = 97, 3
    stats.recent_ms.extend([10.0] * 90 + [100.0] * 10)
    (row,) = snapshot(engine)
    assert row["success_pct"] == 97.0 and row["p50_ms"] == 10.0 and row["p95_ms"] == 100.0
    assert 9.0 <= row["ops_s"] <= 10.0
    console = Console(file=io.StringIO(), width=140)
    console.print(_table(engine))
    text = console.file.getvalue()
    assert "f (fake_op)" in text and "97.00" in text


def test_a_second_sigint_abandons_the_deletions_but_still_writes_events(tmp_path):
    import os
    import signal

    class SlowDelete(Business):
        async def execute(self):
            loop = asyncio.get_running_loop()
            if self.ctx.username == "bot-f01" and not self.executions:
                loop.call_later(0.3, os.kill, os.getpid(), signal.SIGINT)
                loop.call_later(0.8, os.kill, os.getpid(), signal.SIGINT)
            self.executions += 1
            with self.ctx.timed("fake_op"):
                pass
            return False

        async def shutdown(self):
            await asyncio.sleep(3600)  # a lab deletion that hangs

        def shutdown_timeout(self):
            return 3600.0

    monkey.business_class = lambda name: SlowDelete
    t0 = time.monotonic()
    engine = Engine(flocks(count=2, idle_time=0.05), tmp_path, RunSettings(live=False))
    result = asyncio.run(engine.run())
    assert time.monotonic() - t0 < 5
    assert result.stop_reason == "SIGINT"
    rows = read_events(tmp_path).to_pylist()
    assert [r["operation"] for r in rows].count("monkey_stop") == 2
    assert [r["operation"] for r in rows].count("fake_op") >= 4


def test_a_launcher_stop_request_stops_a_scale_run_in_a_parallel_thread(tmp_path):
    """ci/run's SIGINT is raised in its main thread; scale runs of a Parallel block run in
    threads and must stop on the launcher's stop request instead of running their duration."""
    import threading

    import yaml

    from library import env, run
    from library.flock.runner import ScaleRun

    flocks = tmp_path / "flocks.yaml"
    flocks.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "empty",
                    "count": 3,
                    "user_spec": {"username_prefix": "bot-stopreq"},
                    "scopes": [],
                    "business": {"type": "EmptyLoop", "options": {"idle_time": "100ms"}},
                }
            ]
        )
    )
    results = {}

    def scale(name):
        results[name] = ScaleRun.prepare(flocks, duration="10m").execute(
            tmp_path / name, live=False, min_success_pct=0
        )

    with run.stop_request_scope() as request:
        threading.Timer(1.0, request.set, args=("SIGINT",)).start()
        with env.using_artifact_dir(tmp_path), run.Parallel("campaign") as parallel:
            parallel.delayed(scale, "a")
            parallel.delayed(scale, "b")
    assert {name: r["stop_reason"] for name, r in results.items()} == {"a": "SIGINT", "b": "SIGINT"}
    for name in ("a", "b"):
        rows = read_events(tmp_path / name).to_pylist()
        assert [r["operation"] for r in rows].count("monkey_stop") == 3
