"""Shards of a run on Dask distributed workers.

Monkey `i` of each flock runs in shard `i mod n`; every shard waits for the same wall-clock
start; every shard writes its own part files into the one artifact dir (a shared filesystem:
the local machine here, a shared volume on a real cluster). A shard whose worker dies is
reported, and its monkeys are counted as failed rather than silently lost.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from library.artifacts import EVENTS_DIR, Operation
from library.errors import UserError
from library.events import Recorder, now_us
from library.flock.engine import RunSettings, run_flocks
from library.flock.models import FlockConfig, dump_flocks, parse_flocks
from library.run import stop_request

log = logging.getLogger(__name__)
START_DELAY_S = 3.0  # time for every shard to be scheduled and imported before the common start
STOP_POLL_S = 1.0


def _run_shard(
    flock_data: list[dict],
    out_dir: str,
    shard: int,
    shards: int,
    start_at: float,
    duration: float | None,
    endpoints: dict[str, Any],
    stop_name: str,
) -> dict[str, Any]:
    """Runs inside a worker: one engine, its own event loop, polling the shared stop flag."""
    from distributed import Event

    stop = Event(stop_name)
    checked_at, stopping = 0.0, False

    def stop_check() -> bool:
        # A round trip to the scheduler: at most once a second.
        nonlocal checked_at, stopping
        now = time.monotonic()
        if now - checked_at >= STOP_POLL_S:
            checked_at = now
            stopping = bool(stop.is_set())
        return stopping

    settings = RunSettings(
        duration=duration,
        shard=shard,
        shards=shards,
        start_at=start_at,
        live=False,
        stop_check=stop_check,
        endpoints=endpoints,
        handle_signals=False,
    )
    return run_flocks(parse_flocks(flock_data, "flocks"), Path(out_dir), settings).as_dict()


def shard_monkeys(flocks: list[FlockConfig], shard: int, shards: int) -> list[tuple[str, str, str]]:
    """(flock, business, user) of every monkey that shard runs."""
    return [
        (flock.name, flock.business.type, user.username)
        for flock in flocks
        for i, user in enumerate(flock.monkeys())
        if i % shards == shard
    ]


def run_distributed(
    flocks: list[FlockConfig],
    out_dir: Path,
    *,
    duration: float | None,
    workers: int | None = None,
    scheduler: str | None = None,
    endpoints: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the flocks across Dask workers; returns (shard results, dead shards)."""
    import dask
    from distributed import Client, Event, LocalCluster, as_completed

    out_dir = Path(out_dir)
    # A lost shard must be reported, not run again somewhere else later than its peers.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(
                n_workers=workers or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            client = Client(cluster)
        try:
            return _run_on(
                client, flocks, out_dir, duration, workers, endpoints or {}, Event, as_completed
            )
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _run_on(client, flocks, out_dir, duration, workers, endpoints, Event, as_completed):
    addresses = sorted(client.scheduler_info()["workers"])
    if not addresses:
        raise UserError("the Dask scheduler has no workers; start some or use --workers N")
    shards = workers or len(addresses)
    stop_name = f"bosun-stop-{uuid.uuid4().hex}"
    stop = Event(stop_name, client=client)
    start_at = time.time() + START_DELAY_S
    data = dump_flocks(flocks)
    futures = {
        client.submit(
            _run_shard,
            data,
            str(out_dir),
            shard,
            shards,
            start_at,
            duration,
            endpoints,
            stop_name,
            workers=[addresses[shard % len(addresses)]],
            pure=False,
            retries=0,
            key=f"scale-shard-{shard}-{stop_name}",
        ): shard
        for shard in range(shards)
    }
    interrupts = [0]

    launcher = stop_request()

    def on_signal(signum, _frame):
        interrupts[0] += 1
        log.warning("%s: stopping every shard", signal.Signals(signum).name)
        stop.set()
        if launcher is not None:
            # ci/run's handler is set aside while the shards run: it learns of the signal here,
            # so the rest of its step is skipped once the shards' records are written.
            launcher.note_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    if launcher is not None and launcher.is_set():
        stop.set()  # the launcher was asked to stop while the cluster started
    results, dead = [], []
    try:
        for future in as_completed(list(futures)):
            shard = futures[future]
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - any loss of a shard is reported the same way
                dead.append({"shard": shard, "error": f"{type(exc).__name__}: {exc}"[:300]})
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            stop.clear()
    if dead:
        _record_dead(flocks, out_dir, shards, dead)
    return sorted(results, key=lambda r: r["shard"]), dead


def _record_dead(flocks, out_dir: Path, shards: int, dead: list[dict[str, Any]]) -> None:
    """One failed monkey_error event per monkey of each dead shard, so the summary counts it."""
    for entry in dead:
        rec = Recorder(out_dir / EVENTS_DIR, shard=entry["shard"])
        start = now_us()
        for flock, business, user in shard_monkeys(flocks, entry["shard"], shards):
            rec.record(
                Operation.MONKEY_ERROR,
                start,
                0,
                False,
                user,
                "",
                "ShardDied",
                entry["error"],
                flock=flock,
                business=business,
            )
        rec.close()
