"""The service's alerts, daily report text, metrics tally and settings, without a process."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from library.errors import UserError
from library.eventstore import PartitionedRecorder
from library.service.alerts import Alerts, human
from library.service.metrics import BUCKETS_S, EventTally
from library.service.reports import daily_text, next_post, success_pct
from library.service.settings import AlertRule, parse_settings


def summary(name, ok, failed, **kw):
    return {"name": name, "success_count": ok, "failure_count": failed, **kw}


def test_one_alert_per_breach_and_one_recovery():
    alerts = Alerts([AlertRule(name="avail", flocks="web-*", min_success_pct=90, window=60)])
    ok = failed = 0
    kinds = []
    # t 0..300 s every 10 s: healthy, then 100 s of failures, then healthy again.
    for t in range(0, 310, 10):
        if 100 <= t < 200:
            failed += 5
        else:
            ok += 5
        alerts.sample([summary("web-a", ok, failed), summary("other", 0, t)], float(t))
        kinds += [(t, m.kind, m.flock) for m in alerts.evaluate(float(t))]
    # "other" fails throughout but its name does not match the rule.
    assert [(k, f) for _, k, f in kinds] == [("firing", "web-a"), ("recovered", "web-a")]
    fired, recovered = (t for t, _, _ in kinds)
    assert fired == 100  # the first evaluation whose window holds a failure below 90 %
    # Recovered once the 60 s window is back at or above 90 %: 54 of 60 successes.
    assert 200 < recovered <= 260
    assert not alerts.firing
    assert [m.kind for m in alerts.history] == ["firing", "recovered"]
    assert "after " in alerts.history[1].text and "in breach" in alerts.history[1].text


def test_idle_window_keeps_state_and_replaced_flock_restarts_counts():
    alerts = Alerts([AlertRule(min_success_pct=50, window=30)])
    alerts.sample([summary("f", 0, 0)], 0.0)
    alerts.sample([summary("f", 1, 9)], 10.0)
    assert [m.kind for m in alerts.evaluate(10.0)] == ["firing"]
    alerts.sample([summary("f", 1, 9)], 20.0)  # paused: nothing ran
    alerts.sample([summary("f", 1, 9)], 50.0)
    assert alerts.evaluate(50.0) == [] and alerts.firing  # still in breach, not repeated
    alerts.sample([summary("f", 3, 0)], 60.0)  # replaced: counts started again
    alerts.sample([summary("f", 9, 0)], 70.0)
    assert [m.kind for m in alerts.evaluate(70.0)] == ["recovered"]
    alerts.sample([], 80.0)  # deleted
    assert alerts.samples == {} and alerts.firing == {}


def test_a_flock_that_failed_before_its_first_sample_fires():
    # Its monkeys failed and stopped before the service first looked: every sample holds the
    # same counts, and the failures still count in the first window.
    alerts = Alerts([AlertRule(min_success_pct=90, window=30)])
    alerts.sample([summary("bad", 0, 2)], 1.0)
    assert [m.kind for m in alerts.evaluate(1.0)] == ["firing"]
    for t in (2.0, 3.0, 20.0):
        alerts.sample([summary("bad", 0, 2)], t)
        assert alerts.evaluate(t) == []  # one message per breach


def test_samples_stay_bounded():
    alerts = Alerts([AlertRule(window=60)])
    for t in range(10_000):
        alerts.sample([summary("f", t, 0)], float(t))
    assert len(alerts.samples["f"]) <= 62
    # The report's day of counts, sampled every 10 s: merged to 12-minute steps.
    day = Alerts([], keep_s=86400.0)
    for t in range(0, 3 * 86400, 10):
        day.sample([summary("f", t, 0)], float(t))
    assert len(day.samples["f"]) <= 125
    ok, failed = day.window_counts("f", 86400.0, 3 * 86400 - 10)  # counts grow 1 per s
    assert abs(ok - 86400) <= 720 and failed == 0  # a window is off by one step at most
    # No rule and no report: nothing kept beyond the last two samples, nothing evaluated.
    idle = Alerts([])
    for t in range(100):
        idle.sample([summary("f", t, 0)], float(t))
    assert len(idle.samples["f"]) == 2 and idle.evaluate(100.0) == []


def test_undelivered_messages_are_retried_in_order():
    alerts = Alerts([AlertRule(min_success_pct=50, window=30)], default_webhook="http://x/hooks/1")
    alerts.sample([summary("f", 0, 0)], 0.0)
    alerts.sample([summary("f", 0, 5)], 10.0)
    alerts.evaluate(10.0)
    alerts.sample([summary("f", 50, 5)], 20.0)
    alerts.evaluate(20.0)
    posted, down = [], [True]

    async def post(url, payload):
        if down[0]:
            raise ConnectionError("webhook down")
        posted.append(payload["text"])

    asyncio.run(alerts.deliver(post))
    assert posted == [] and alerts.history[0].error == "webhook down"
    down[0] = False
    asyncio.run(alerts.deliver(post))
    assert [("recovered" in p) for p in posted] == [False, True]
    assert all(m.delivered for m in alerts.history)


def test_daily_report_is_mobus_text_with_paused_flocks():
    summaries = [
        summary("empty", 5, 0, monkey_count=1, start_time="2026-11-29T08:00:00+00:00"),
        summary(
            "tap", 199_999, 1, monkey_count=3, start_time="2026-11-30T01:00:00+00:00", paused=True
        ),  # fmt: skip
        summary("new", 0, 0, monkey_count=2, start_time=None),
    ]
    text = daily_text(summaries, "https://data.example.org/", {"tap": (90, 10)})
    assert text == (
        "Currently running 3 flocks against https://data.example.org/:\n"
        "• *empty*: 1 monkey started 2026-11-29 with 0 failures (100.00% success)\n"
        "• *tap*: 3 monkeys started 2026-11-30 with 1 failure (99.99% success), "
        "90.00% in the last 24 h, paused\n"
        "• *new*: 2 monkeys (not started) with 0 failures (100.00% success)\n"
    )
    assert success_pct(0, 0) == 100.0
    assert daily_text([], "u").startswith("Currently running 0 flocks against u:")


def test_next_post_is_the_next_time_of_day_utc():
    now = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    assert next_post(now, "08:00") == dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    assert next_post(now, "09:30") == dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)
    assert human(3600) == "1h" and human(90) == "1m30s" and human(86400) == "24h"


def test_tally_counts_buckets_and_merges(tmp_path):
    rec = PartitionedRecorder(tmp_path, flock="f", business="HTTPLoop")
    tally = EventTally()
    rec.taps.append(tally.tap)
    durations_us = [1_000, 5_000, 5_001, 2_000_000, 500_000_000]
    for i, d in enumerate(durations_us):
        rec.record("http_request", 1_796_000_000_000_000 + i, d, success=i != 1, monkey="m")
    tally.catch_up(rec)
    tally.catch_up(rec)  # nothing new: nothing counted twice
    rec.flush()  # the tap sees nothing new either
    rec.record("other", 1_796_000_000_000_000, 7, monkey="m", flock="g")
    rec.close()
    assert tally.keys == [("f", "HTTPLoop", "http_request"), ("g", "HTTPLoop", "other")]
    assert tally.ok.tolist() == [4, 1] and tally.failed.tolist() == [1, 0]
    # le=0.005 holds 1 ms and exactly 5 ms; 5.001 ms is in le=0.01; 500 s only in +Inf.
    row = dict(zip([*BUCKETS_S, float("inf")], tally.buckets[0].tolist(), strict=True))
    assert row[0.005] == 2 and row[0.01] == 1 and row[2.5] == 1 and row[float("inf")] == 1
    assert tally.sum_us[0] == sum(durations_us)
    merged = EventTally()
    merged.add(tally.snapshot())
    merged.add(tally.snapshot())
    assert merged.ok.tolist() == [8, 2] and merged.buckets.sum() == 2 * tally.buckets.sum()


@pytest.mark.parametrize(
    ("dask", "message"),
    [
        ([{"flocks": "x"}], "service.dask.0: give either workers"),
        ([{"flocks": "x", "workers": 2, "scheduler": "tcp://h:8786"}], "service.dask.0: give"),
        ([{"flocks": "x", "workers": 0}], "service.dask.0.workers: Input should be greater"),
    ],
)
def test_dask_placement_is_one_cluster(dask, message):
    with pytest.raises(UserError) as err:
        parse_settings({"dask": dask}, "service")
    assert str(err.value).startswith(message)


def test_the_service_runtime_puts_arrow_on_the_c_allocator(tmp_path):
    """mimalloc keeps its high-water mark: on it, the first compaction of an hour left the
    service 30-odd MiB larger for good (tests/bench/bench_service_soak.py measures both)."""
    import pyarrow as pa

    from library.service.runtime import Runtime

    async def started_pool() -> str:
        runtime = Runtime(tmp_path / "events", {})
        await runtime.start()
        try:
            return pa.default_memory_pool().backend_name
        finally:
            await runtime.aclose()

    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    try:
        assert asyncio.run(started_pool()) == "system"
    finally:
        pa.set_memory_pool(previous)
