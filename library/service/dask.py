"""Service flocks on a Dask cluster: the monkeys run in shards on Dask workers, the service
stays their control plane.

A flock whose name matches a ``service.dask`` placement runs as `DaskFlock`: monkey `i` goes
to shard `i mod n` (n = ``workers`` of a local cluster, or the scheduler's workers), each shard
runs the engine's monkeys on its own event loop (`run_shard`) and writes its events into the
service's events directory (hour partitions; a shared volume on a real cluster). Every
`PUBLISH_S` a shard publishes a snapshot (each monkey's state and counts, its metrics tally)
in a Dask Variable; the service reads them every `POLL_S`, so its API, summaries and
``/metrics`` show the shards merged, at most `PUBLISH_S + POLL_S` (3 s) old. A shard whose
task errs (its worker died: the scheduler is told to allow no retry) shows its monkeys as
failed: state ERROR, one failure each, and one ``ShardDied`` monkey_error event each.

Pause honours the flock's pause mode (``pause_labs``, or the request's ``labs``): ``release``
stops the shards (their labs are released) and resume starts them again; ``keep`` leaves the
shards up and signals them (a Dask Event each polls every second) so that their monkeys idle
at the engine's checkpoint, labs kept, and go on when resumed. Refresh restarts the shards,
so notebook runners read their repository again (asked while paused: done on resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import threading
import time
import uuid
from collections.abc import Coroutine
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from library.artifacts import Operation
from library.errors import one_line
from library.events import now_us
from library.eventstore import PartitionedRecorder
from library.flock.engine import _loop_factory, shutdown_bound, start_in_batches, stop_tasks
from library.flock.health import HealthRow, HealthSampler
from library.flock.models import FlockConfig, dump_flocks, parse_flocks
from library.flock.monkey import CONTINUE, RESUMED, FlockStats, Monkey
from library.flock.shared import Shared
from library.service.flock import ServiceFlock
from library.service.metrics import EventTally
from library.service.runtime import Runtime

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

log = logging.getLogger(__name__)
PUBLISH_S = 2.0
POLL_S = 1.0
STOP_POLL_S = 1.0


# -- inside a worker


def run_shard(
    flock_data: dict[str, Any],
    events_dir: str,
    shard: int,
    shards: int,
    endpoints: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """One shard of a service flock, until the flock's stop event is set (a Dask task)."""
    from distributed import Event, Variable

    stop = Event(f"{key}-stop")
    pause = Event(f"{key}-pause")
    variable = Variable(f"{key}-shard-{shard}")
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(
            _shard_main(flock_data, events_dir, shard, shards, endpoints, stop, pause, variable)
        )


def _stop_or_pause(stop: Any, pause: Any) -> tuple[bool, bool]:
    return stop.is_set(), pause.is_set()


async def _shard_main(flock_data, events_dir, shard, shards, endpoints, stop, pause, variable):
    gc.set_threshold(100_000, 50, 100)  # as the service's (library/service/server.py)
    (flock,) = parse_flocks([flock_data], "flock")
    users = [u for i, u in enumerate(flock.monkeys()) if i % shards == shard]
    recorder = PartitionedRecorder(events_dir, shard=shard)
    await asyncio.to_thread(recorder.prepare)
    tally = EventTally()
    recorder.taps.append(tally.tap)
    shared = Shared(endpoints, monkeys=len(users))
    stats = {u.username: FlockStats(flock) for u in users}
    monkeys = {u.username: Monkey(flock, u, recorder, shared, stats[u.username]) for u in users}
    tasks: dict[str, asyncio.Task] = {}
    health = HealthSampler(lambda: sum(1 for t in tasks.values() if not t.done()), shard)
    health_task = asyncio.create_task(health.run())
    stopping = False
    # The flock paused with its labs kept: each monkey finishes its execution under way and
    # waits at the engine's checkpoint (before its next one) until resumed, as a local
    # flock's monkeys do (library/service/flock.py).
    resumed = asyncio.Event()
    resumed.set()
    starter: asyncio.Task[None]  # the monkeys' start in batches (below; again on resume)

    async def checkpoint(monkey: Monkey) -> int:
        if resumed.is_set():
            return CONTINUE
        await resumed.wait()
        return RESUMED

    def set_paused(paused: bool) -> None:
        nonlocal starter
        if paused:
            resumed.clear()
        else:
            resumed.set()
        for item in stats.values():
            # Only while paused: otherwise the monkeys' loop pays nothing.
            item.checkpoint = checkpoint if paused else None
        if not paused and starter.done():
            # Monkeys not started when the flock was paused start now, in the batches.
            missing = [u for u in users if u.username not in tasks]
            starter = asyncio.create_task(
                start_in_batches(flock, missing, start, lambda: stopping or not resumed.is_set())
            )

    def start(user) -> None:
        tasks[user.username] = asyncio.create_task(monkeys[user.username].run())

    def snapshot() -> dict[str, Any]:
        tally.catch_up(recorder)
        states = {}
        for name, monkey in monkeys.items():
            task = tasks.get(name)
            if task is None:
                state = "IDLE"
            elif monkey.state == "error":
                state = "ERROR"
            elif task.done() or monkey.state == "stopped":
                state = "FINISHED"
            else:
                state = "RUNNING"
            states[name] = (state, stats[name].successes, stats[name].failures)
        rows: list[HealthRow | None] = [*health.rows[-1:]] or [None]
        del health.rows[:-1]
        return {
            "time": time.time(),
            "paused": not resumed.is_set(),
            "monkeys": states,
            "tally": tally.snapshot(),
            "health": rows[0],
        }

    starter = asyncio.create_task(
        start_in_batches(flock, users, start, lambda: stopping or not resumed.is_set())
    )
    loop = asyncio.get_running_loop()
    next_publish = next_flush = loop.time()
    try:
        while True:
            stopped, paused = await asyncio.to_thread(_stop_or_pause, stop, pause)
            if stopped:
                break
            if paused == resumed.is_set():
                set_paused(paused)
                next_publish = loop.time()  # the service sees the change at once
            now = loop.time()
            if now >= next_publish:
                next_publish = now + PUBLISH_S
                await asyncio.to_thread(variable.set, snapshot())
            if now >= next_flush:
                next_flush = now + 10.0
                recorder.flush(wait=False)
            await asyncio.sleep(STOP_POLL_S)
    finally:
        stopping = True
        starter.cancel()
        await stop_tasks(list(tasks.values()), shutdown_bound([flock]))
        health_task.cancel()
        await shared.close()
        await asyncio.to_thread(recorder.close)
        final = snapshot()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(variable.set, final)
    return final


# -- in the service


class DaskFlock(ServiceFlock):
    """A service flock whose monkeys run in shards on a Dask cluster."""

    def __init__(
        self,
        config: FlockConfig,
        runtime: Runtime,
        *,
        source: str,
        created_by: str,
        placement: Any,
    ) -> None:
        super().__init__(config, runtime, source=source, created_by=created_by)
        self.placement = placement
        self.tally = EventTally()
        self.shard_states: dict[str, str] = {}
        self.dead_shards: dict[int, str] = {}
        # Each shard's latest engine health row (library/flock/health.py's columns).
        self.shard_health: dict[int, tuple] = {}
        self.shards = 0
        self.last_snapshot: float | None = None
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._futures: dict[int, Any] = {}
        self._key = ""
        self._runner: asyncio.Task | None = None
        # A stop while the cluster is still starting (in a thread) closes it once started.
        self._cluster_lock = threading.Lock()
        self._base: dict[str, tuple[int, int]] = {}  # counts of shard runs before this one
        # Whether each shard says it idles (paused with its labs kept), from its snapshot.
        self._shard_paused: dict[int, bool] = {}
        self._refresh_pending = False  # refresh asked while paused: done on resume
        self._side_tasks: set[asyncio.Task[Any]] = set()  # held: the loop keeps weak refs

    # -- running

    def start(self, paused: bool = False) -> None:
        self.runtime.shared.monkeys += len(self.users)
        if paused:  # restored paused after a restart: its shards start when resumed
            self.paused, self.pause_mode = True, "release"
            return
        self._runner = asyncio.create_task(self._run(), name=f"dask-{self.name}")

    async def _run(self) -> None:
        try:
            await asyncio.to_thread(self._connect)
            await asyncio.to_thread(self._submit)
        except Exception as exc:  # noqa: BLE001 - the flock shows it rather than vanish
            log.error("flock %s: Dask cluster unavailable: %s", self.name, one_line(str(exc)))
            for name in self.users:
                self.logs[name].add(f"ERROR Dask cluster unavailable: {one_line(str(exc))}")
                self.shard_states[name] = "ERROR"
            return
        while True:
            await asyncio.sleep(POLL_S)
            dead = await asyncio.to_thread(self._poll)
            for shard, error in dead:
                self._shard_died(shard, error)
            keeping = self._keeping()
            if any(
                paused != keeping
                for shard, paused in self._shard_paused.items()
                if shard not in self.dead_shards
            ):
                # A pause or resume the shards have not seen (signalled before they were
                # submitted, or lost): signalled again.
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._signal_pause)

    def _connect(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        with self._cluster_lock:
            if self._client is not None or self.stopping:
                return
            # A lost shard is reported, not run again somewhere else later than its peers.
            dask.config.set({"distributed.scheduler.allowed-failures": 0})
            if self.placement.scheduler:
                self._client = Client(self.placement.scheduler, set_as_default=False)
            else:
                self._cluster = LocalCluster(
                    n_workers=self.placement.workers or 1,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                self._client = Client(self._cluster, set_as_default=False)

    def _submit(self) -> None:
        client = self._client
        if client is None:
            raise RuntimeError("the Dask client is opened before the shards are submitted")
        if self.placement.workers:
            # One long-running shard per worker thread: a worker the nanny is restarting
            # (after a death) must be back, or two shards would queue on one thread.
            client.wait_for_workers(self.placement.workers, timeout=120)
        addresses = sorted(client.scheduler_info()["workers"])
        if not addresses:
            raise RuntimeError("the Dask scheduler has no workers")
        self.shards = self.placement.workers or len(addresses)
        self._key = f"bosun-{self.name}-{uuid.uuid4().hex[:12]}"
        self._shard_paused = {}
        if self._keeping():  # paused (labs kept) while the cluster was starting
            self._signal_pause()
        (data,) = dump_flocks([self.config])
        endpoints = self.runtime.shared.endpoints
        events_dir = str(self.runtime.recorder.out_dir)
        self._futures = {
            shard: client.submit(
                run_shard,
                data,
                events_dir,
                shard,
                self.shards,
                endpoints,
                self._key,
                workers=[addresses[shard % len(addresses)]],
                pure=False,
                retries=0,
                key=f"{self._key}-run-{shard}",
            )
            for shard in range(self.shards)
        }
        self._base = {n: (s.successes, s.failures) for n, s in self.stats.items()}
        for name in self.users:
            self.logs[name].add(f"starting on Dask shard of {self.shards}")

    def _poll(self) -> list[tuple[int, str]]:
        """Read every shard's snapshot (a thread); returns shards newly found dead."""
        from distributed import Variable

        merged = EventTally()
        dead = []
        newest = None
        for shard, future in self._futures.items():
            if future.status == "error" and shard not in self.dead_shards:
                error = "shard died"
                with contextlib.suppress(Exception):
                    exc = future.exception(timeout=1)
                    error = f"{type(exc).__name__}: {exc}"[:300]
                dead.append((shard, error))
            try:
                snap = Variable(f"{self._key}-shard-{shard}", client=self._client).get(timeout=0.5)
            except Exception:  # noqa: BLE001 - not published yet (TimeoutError), or gone
                continue
            newest = max(newest or 0.0, snap["time"])
            self._shard_paused[shard] = bool(snap.get("paused"))
            if snap.get("health") and shard not in self.dead_shards:
                self.shard_health[shard] = tuple(snap["health"])
            merged.add(snap["tally"])
            for name, (state, ok, failed) in snap["monkeys"].items():
                if shard in self.dead_shards or name not in self.stats:
                    continue
                base_ok, base_failed = self._base.get(name, (0, 0))
                self.stats[name].successes = base_ok + ok
                self.stats[name].failures = base_failed + failed
                self.shard_states[name] = state
        self.tally = merged
        if newest is not None:
            self.last_snapshot = newest
            if self.start_time is None and not self.paused:
                self.start_time = dt.datetime.now(dt.UTC)
        return dead

    def _shard_died(self, shard: int, error: str) -> None:
        self.dead_shards[shard] = error
        self.shard_health.pop(shard, None)
        log.error("flock %s: shard %d died: %s", self.name, shard, error)
        names = [u for i, u in enumerate(self.users) if i % self.shards == shard]
        start = now_us()
        for name in names:
            self.shard_states[name] = "ERROR"
            self.stats[name].failures += 1
            self.logs[name].add(f"ERROR shard {shard} died: {error}")
            self.runtime.recorder.record(
                Operation.MONKEY_ERROR,
                start,
                0,
                False,
                name,
                "",
                "ShardDied",
                error,
                flock=self.name,
                business=self.config.business.type,
            )

    async def _stop_shards(self) -> int:
        """Set the stop event and wait for the shards' final snapshots; returns how many
        shards did not end in time."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        if not self._futures:
            return 0

        bound = shutdown_bound([self.config]) + 2 * STOP_POLL_S
        return await asyncio.to_thread(self._stop_blocking, bound)

    def _stop_blocking(self, bound: float) -> int:
        from distributed import Event

        with contextlib.suppress(Exception):
            Event(f"{self._key}-stop", client=self._client).set()
        futures = list(self._futures.values())
        # The shards' ends (their monkeys stopped, labs deleted), seen on the futures' own
        # states: distributed.wait() would need a default client, which the service's is not.
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline and not all(f.done() for f in futures):
            time.sleep(0.2)
        late = sum(1 for f in futures if not f.done())
        with contextlib.suppress(Exception):
            self._poll()
        from distributed import Variable

        for shard in self._futures:
            with contextlib.suppress(Exception):
                Variable(f"{self._key}-shard-{shard}", client=self._client).delete()
        self._futures = {}
        self._shard_paused = {}
        return late

    def _close_cluster(self) -> None:
        with self._cluster_lock:
            for thing in (self._client, self._cluster):
                if thing is not None:
                    with contextlib.suppress(Exception):
                        thing.close()
            self._client = self._cluster = None

    async def stop(self) -> int:
        self.stopping = True
        late = await self._stop_shards()
        await asyncio.to_thread(self._close_cluster)
        for name in self.users:
            self.logs[name].add("stopped")
        self.runtime.shared.monkeys -= len(self.users)
        for name in self.users:
            self.runtime.logs.pop((self.name, name), None)
        return late

    def _keeping(self) -> bool:
        """Whether the shards are to idle with their labs kept (paused in keep mode)."""
        return self.paused and self.pause_mode == "keep"

    def _signal_pause(self) -> None:
        """Tell the shards (a Dask Event they poll every STOP_POLL_S) to idle or go on."""
        from distributed import Event

        key, client = self._key, self._client
        if not key or client is None:
            return  # not submitted yet: `_submit` signals the pause with the shards
        event = Event(f"{key}-pause", client=client)
        if self._keeping():
            event.set()
        else:
            event.clear()

    def _later(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def pause(self, mode: str | None = None) -> None:
        if self.paused or self.stopping:
            return
        self.paused = True
        self.pause_mode = mode or self.runtime.pause_labs
        if self.pause_mode == "keep":
            # The shards stay up and their monkeys idle, labs kept, until resumed.
            for name in self.users:
                self.logs[name].add("paused (labs kept: the shards' monkeys idle)")
            with contextlib.suppress(Exception):  # the poll loop signals it again
                await asyncio.to_thread(self._signal_pause)
            return
        for name in self.users:
            self.logs[name].add("paused (shards stopped, labs released)")
        await self._stop_shards()

    def resume(self) -> None:
        if not self.paused or self.stopping:
            return
        keeping = self._keeping()
        self.paused = False
        for name in self.users:
            self.logs[name].add("resumed")
        if keeping and self._runner is not None and not self._runner.done():
            # The shards are up: they go on (the poll loop signals it if this is lost).
            self._later(asyncio.to_thread(self._signal_pause))
            if self._refresh_pending:
                self._refresh_pending = False
                self._later(self.refresh())
            return
        self._refresh_pending = False  # the shards start afresh: that is the refresh
        self.dead_shards.clear()
        self.shard_states.clear()  # IDLE until the new shards publish
        self._runner = asyncio.create_task(self._run(), name=f"dask-{self.name}")

    async def refresh(self) -> None:
        for name in self.users:
            self.logs[name].add("refresh requested: the shards start again")
        if self.paused:
            self._refresh_pending = True  # on resume
            return
        if self.stopping:
            return
        await self._stop_shards()
        self.dead_shards.clear()
        self.shard_states.clear()  # IDLE until the new shards publish
        self._runner = asyncio.create_task(self._run(), name=f"dask-{self.name}")

    # -- what the API shows

    def monkey_state(self, name: str) -> str:
        if self.stopping:
            return "FINISHED"
        if self.paused:
            # A monkey whose shard died while its labs were kept is not paused: it failed.
            if self.pause_mode == "keep" and self.shard_states.get(name) == "ERROR":
                return "ERROR"
            return "PAUSED"
        return self.shard_states.get(name, "IDLE")


def flock_factory(placements: list[Any]):
    """`FlockManager.make_flock` placing flocks that match a placement on Dask."""

    def make(config: FlockConfig, runtime: Runtime, *, source: str, created_by: str):
        for placement in placements:
            if fnmatchcase(config.name, placement.flocks):
                return DaskFlock(
                    config, runtime, source=source, created_by=created_by, placement=placement
                )
        return ServiceFlock(config, runtime, source=source, created_by=created_by)

    return make
