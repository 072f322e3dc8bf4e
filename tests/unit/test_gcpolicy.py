"""The collector during a load (library/flock/gcpolicy.py): off, frozen after the ramp, run when
the process grows by a quarter, and everything back as it was afterwards."""

from __future__ import annotations

import gc

import pytest

from library.flock import gcpolicy
from library.flock.engine import RunSettings, run_flocks
from library.flock.gcpolicy import LoadGc
from library.flock.models import parse_flocks

MIB = 2**20


@pytest.fixture(autouse=True)
def _collector_restored():
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    yield
    gc.unfreeze()
    gc.enable() if enabled else gc.disable()
    assert frozen == 0, "a frozen heap before the test would hide what the policy does"


def _cycle() -> None:
    a: list = []
    a.append(a)


def test_off_during_the_load_and_restored_after():
    policy = LoadGc()
    policy.start()
    assert not gc.isenabled()
    policy.started()
    assert gc.get_freeze_count() > 0
    policy.stop()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    policy = LoadGc()
    policy.start()
    policy.stop()
    assert not gc.isenabled()


def test_overlapping_loads_share_it_and_the_last_gives_it_back():
    first, second = LoadGc(), LoadGc()
    first.start()
    second.start()
    first.started()
    first.stop()
    assert not gc.isenabled(), "the second load is still running"
    assert gc.get_freeze_count() > 0
    first.stop()  # twice is once
    assert not gc.isenabled()
    second.stop()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_collects_only_when_the_process_grew_by_a_quarter_or_64_mib(monkeypatch):
    collected: list[int] = []
    monkeypatch.setattr(gcpolicy.gc, "collect", lambda: collected.append(1) or 0)
    policy = LoadGc()
    policy.start()
    try:
        policy.check(400 * MIB)  # the baseline
        policy.check(499 * MIB)  # +99 MiB: under a quarter of 400
        assert collected == []
        policy.check(501 * MIB)
        assert collected == [1] and policy.collections == 1
        policy.check(560 * MIB)  # the next quarter counts from 501
        assert collected == [1]
        small = LoadGc()
        small.check(100 * MIB)
        small.check(160 * MIB)  # +60 MiB: a quarter of 100 is under the 64 MiB floor
        assert collected == [1]
        small.check(165 * MIB)
        assert collected == [1, 1]
    finally:
        policy.stop()


def test_the_ramp_is_not_growth():
    policy = LoadGc()
    policy.start()
    try:
        policy.check(100 * MIB)
        policy.started()  # the monkeys grew the process; the baseline starts again here
        policy.check(300 * MIB)
        policy.check(330 * MIB)
        assert policy.collections == 0
        for _ in range(1000):
            _cycle()
        policy.check(600 * MIB)
        assert policy.collections == 1
        assert gc.get_count()[0] < 1000  # the cycles were collected
    finally:
        policy.stop()


def test_a_scale_run_turns_the_collector_off_and_gives_it_back(tmp_path, monkeypatch):
    seen: dict[str, bool] = {}
    flocks = parse_flocks(
        [
            {
                "name": "empty",
                "count": 5,
                "user_spec": {"username_prefix": "bot-gc"},
                "scopes": [],
                "business": {"type": "EmptyLoop", "options": {"idle_time": "10ms"}},
            }
        ]
    )
    original = LoadGc.started

    def started(self: LoadGc) -> None:
        seen["enabled during the load"] = gc.isenabled()
        original(self)
        seen["frozen after the ramp"] = gc.get_freeze_count() > 0

    monkeypatch.setattr(LoadGc, "started", started)
    run_flocks(flocks, tmp_path, RunSettings(duration=1.0, live=False, handle_signals=False))
    assert seen == {"enabled during the load": False, "frozen after the ramp": True}
    assert gc.isenabled() and gc.get_freeze_count() == 0


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_memory_is_given_back_after_the_last_load_and_not_during_another():
    import weakref

    other = LoadGc()
    other.start()
    try:
        node = weakref.ref(_Node())
        assert gcpolicy.give_back_after_load() is False, "another load is running"
        assert node() is not None, "no collection while another load runs"
    finally:
        other.stop()
    gc.disable()  # so that only the call below can collect the cycle
    assert gcpolicy.give_back_after_load() is True
    assert node() is None
