"""The run queue and the results store on PostgreSQL (a shared deployment), in a database made
for the test on the sandbox's PostgreSQL: the same behaviour as on SQLite, two executors
never take the same run, and a run fired end to end lands in both stores."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from library.queue.executor import Executor
from library.queue.store import QueueStore
from library.results.store import Group, Result, ResultsStore
from library.triggers import events, rules
from tests.support.postgres import drop_database, fresh_database

pytestmark = pytest.mark.integration
DB = "bosun_test_triggers"


@pytest.fixture
def pg(sandbox):
    url = fresh_database(DB)
    yield url
    drop_database(DB)


def _requests(count: int):
    ruleset = rules.parse(
        [{"when": {"type": "t"}, "do": [{"project": "example", "step": "prepare"}]}], "r"
    )
    return [
        r
        for i in range(count)
        for r in ruleset.match(events.from_data({"type": "t", "id": f"e{i}"}, "e"))
    ]


def test_queue_on_postgres(pg, tmp_path):
    store = QueueStore(pg)
    assert store.record_event("e0", "t", {"a": 1}, "test") is True
    assert store.record_event("e0", "t", {"a": 1}, "test") is False
    requests = _requests(40)
    first = store.enqueue(requests, "service")
    assert all(created for _, created in first)
    assert not any(created for _, created in store.enqueue(requests, "service"))
    # Two executors (threads, each its own connection) claiming at once: each run once.
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        mine = QueueStore(pg)
        while (run := mine.claim("service", name, tmp_path)) is not None:
            with lock:
                claimed.append(run.id)
        mine.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(run.id for run, _ in first)
    run_id = claimed[0]
    requeued = store.requeue(run_id, "interrupted")
    assert requeued.state == "queued" and requeued.notes == ["interrupted"]
    assert store.cancel(run_id, "me").state == "cancelled"
    assert store.counts() == {"running": 39, "cancelled": 1}
    store.close()


def test_results_on_postgres(pg):
    store = ResultsStore(pg)
    t0 = int(time.time() * 1e6)
    for i in range(4):
        store.record_group(
            Group(uuid=f"g{i}", description=f"run {i}", project="p"),
            [Result("p.run", "FAILED" if i == 2 else "PASSED", data={"i": i, "ref": f"r{i % 2}"})],
            submit_time=t0 + i,
        )
    assert [r["data"]["i"] for r in store.query(latest=True)] == [3]
    assert [r["data"]["i"] for r in store.query(outcome=["FAILED"])] == [2]
    assert [r["data"]["i"] for r in store.query(data={"ref": "r0"})] == [2, 0]
    assert [r["data"]["i"] for r in store.query(since=t0 + 1, until=t0 + 3)] == [2, 1]
    assert [g["uuid"] for g in store.groups(project="p", last=2)] in (["g3", "g2"], ["g2", "g3"])
    store.close()


def test_a_fired_run_lands_in_both_postgres_stores(pg, tmp_path):
    queue = QueueStore(pg)
    [(run, _)] = queue.enqueue(_requests(1), "service")
    executor = Executor(queue, tmp_path / "runs", results_url=pg, poll_s=0.1)
    [done] = asyncio.run(executor.run_until_done([run.id]))
    assert done.state == "succeeded" and done.exit_code == 0
    [result] = ResultsStore(pg).query(testcase="bosun.example.prepare")
    assert result["outcome"] == "PASSED" and result["data"]["event_id"] == "e0"
    queue.close()
