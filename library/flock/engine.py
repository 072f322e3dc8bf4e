"""Run flocks: one asyncio task per monkey, batched starts, a bounded run, a clean stop.

There is no concurrency cap: every monkey of every flock gets its task. The run ends when the
duration is over, when every monkey has finished, on SIGINT/SIGTERM, or when `stop_check` says
so (the distributed coordinator's stop flag). Stopping cancels the monkeys, which delete their
labs within their delete_timeout; a second SIGINT cancels those deletions too. Events are
flushed whatever the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from library.artifacts import EVENTS_DIR, HEALTH_DIR
from library.events import Recorder
from library.flock.gcpolicy import LoadGc, give_back_after_load
from library.flock.health import HealthSampler
from library.flock.live import LiveView
from library.flock.models import FlockConfig, User
from library.flock.monkey import STOPPED, FlockStats, Monkey
from library.flock.shared import Shared

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0


@dataclass
class RunSettings:
    duration: float | None = None
    shard: int = 0
    shards: int = 1
    start_at: float | None = None  # wall-clock epoch seconds at which every shard starts
    live: bool | None = None  # None: a live view when running in the main thread
    stop_check: Callable[[], bool | str | None] | None = None
    endpoints: dict[str, Any] = field(default_factory=dict)
    handle_signals: bool = True


@dataclass
class ShardResult:
    shard: int
    stop_reason: str
    monkeys: dict[str, int]
    start: float
    end: float
    event_files: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Engine:
    def __init__(self, flocks: list[FlockConfig], out_dir: Path, settings: RunSettings) -> None:
        self.flocks = flocks
        self.out_dir = Path(out_dir)
        self.settings = settings
        # Spooled: the process loads pyarrow only to encode, once the load is over.
        self.recorder = Recorder(self.out_dir / EVENTS_DIR, shard=settings.shard, spool=True)
        self.shared = Shared(settings.endpoints, monkeys=sum(f.count for f in flocks))
        self.stats = {flock.name: FlockStats(flock) for flock in flocks}
        self.tasks: list[asyncio.Task] = []
        # The collector off during the load (library/flock/gcpolicy.py: at 10,000 users its
        # young collections, not HTTP, were what the client spent its core on).
        self.gc = LoadGc()
        self.health = HealthSampler(self.active_monkeys, settings.shard, self.gc)
        self.stop_reason = ""
        self.started_wall = 0.0
        self._stop: asyncio.Event | None = None  # made inside the loop, by run()
        self._interrupts = 0

    def active_monkeys(self) -> int:
        return sum(1 for task in self.tasks if not task.done())

    def request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        if self._stop is not None:
            self._stop.set()

    def _on_signal(self, signum: int) -> None:
        self._interrupts += 1
        name = signal.Signals(signum).name
        if self._interrupts == 1:
            log.warning("%s: stopping the monkeys (again to stop at once)", name)
            self.request_stop(name)
        else:
            log.warning("%s again: stopping at once, lab deletions abandoned", name)
            for task in self.tasks:
                task.cancel()

    async def run(self) -> ShardResult:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        signals = self._install_signals(loop)
        self.gc.start()
        health = asyncio.create_task(self.health.run(), name="health")
        live = self._live_view()
        start = time.time()
        freezer: asyncio.Task | None = None
        try:
            await self._wait_for_start()
            start = self.started_wall = time.time()
            starters = [asyncio.create_task(self._start_flock(f)) for f in self.flocks]
            freezer = asyncio.create_task(self._freeze_when_started(starters))
            await self._wait_for_end(starters)
            for starter in starters:
                starter.cancel()
            await self._stop_monkeys()
        finally:
            if freezer is not None:
                freezer.cancel()
            if live is not None:
                live.stop()
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health
            await self.shared.close()
            for sig, previous in signals:
                loop.remove_signal_handler(sig)
                if previous is not None:  # None: set outside Python, nothing to put back
                    signal.signal(sig, previous)
            self.gc.stop()
            # The writer thread must not hold the loop: close() waits in a worker thread.
            await asyncio.to_thread(self.recorder.close, False)
            await asyncio.to_thread(self._write_records)
        return ShardResult(
            shard=self.settings.shard,
            stop_reason=self.stop_reason or "finished",
            monkeys={name: len(s.monkeys) for name, s in self.stats.items()},
            start=start,
            end=time.time(),
            event_files=len(self.recorder.files),
        )

    def _write_records(self) -> None:
        """Encode the spooled events and write the health samples, with what the load freed
        given back first: pyarrow and numpy (~50 MiB) then reuse that memory instead of
        adding to it."""
        give_back_after_load()
        self.recorder.encode()
        self.health.write(self.out_dir / HEALTH_DIR)

    def _install_signals(self, loop) -> list[tuple[int, Any]]:
        if (
            not self.settings.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            return []
        installed: list[tuple[int, Any]] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Kept to be put back: asyncio's removal sets SIGINT's default, which would make a
            # process started with SIGINT ignored (in the background, under nohup) interruptible.
            installed.append((sig, signal.getsignal(sig)))
            loop.add_signal_handler(sig, self._on_signal, sig)
        return installed

    def _live_view(self):
        want = self.settings.live
        if want is None:
            want = threading.current_thread() is threading.main_thread()
        if not want:
            return None

        view = LiveView(self)
        view.start()
        return view

    def _stop_event(self) -> asyncio.Event:
        if self._stop is None:
            raise RuntimeError("the engine's stop event is made when run() starts")
        return self._stop

    async def _wait_for_start(self) -> None:
        if self.settings.start_at is not None:
            delay = self.settings.start_at - time.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_event().wait(), delay)

    async def _start_flock(self, flock: FlockConfig) -> None:
        users = flock.monkeys()
        mine = [u for i, u in enumerate(users) if i % self.settings.shards == self.settings.shard]
        stats = self.stats[flock.name]
        stats.count = len(mine)

        def start(user: User) -> None:
            monkey = Monkey(flock, user, self.recorder, self.shared, stats, self.health)
            self.tasks.append(asyncio.create_task(monkey.run(), name=user.username))

        await start_in_batches(flock, mine, start, self._stop_event().is_set)

    async def _freeze_when_started(self, starters: list[asyncio.Task]) -> None:
        await asyncio.wait(starters)
        if not self._stop_event().is_set():
            self.gc.started()

    async def _wait_for_end(self, starters: list[asyncio.Task]) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if self.settings.duration is None else loop.time() + self.settings.duration
        flush_every, next_flush = 10.0, loop.time() + 10.0
        stop = self._stop_event()
        while not stop.is_set():
            now = loop.time()
            if deadline is not None and now >= deadline:
                self.request_stop("duration")
                break
            if all(s.done() for s in starters) and all(t.done() for t in self.tasks):
                self.request_stop("finished")
                break
            if self.settings.stop_check is not None and (why := self.settings.stop_check()):
                # A string names the reason (SIGINT, SIGTERM from a launcher).
                self.request_stop(why if isinstance(why, str) else "stopped")
                break
            if now >= next_flush:
                # Periodic flushes bound what a killed process loses.
                next_flush = now + flush_every
                self.recorder.flush(wait=False)
            step = 0.2 if deadline is None else max(0.0, min(0.2, deadline - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), step)

    async def _stop_monkeys(self) -> None:
        await stop_tasks(self.tasks, shutdown_bound(self.flocks))
        for monkey_stats in self.stats.values():
            for monkey in monkey_stats.monkeys:
                monkey.state = STOPPED


# Starting and stopping one flock's monkeys, shared by a bounded run (Engine) and the standing
# service, whose flocks come and go on a loop that keeps running.


async def start_in_batches(
    flock: FlockConfig,
    users: list[User],
    start: Callable[[User], None],
    stopped: Callable[[], bool],
) -> None:
    """Call `start(user)` for each user, in the flock's batches (mobu's start_batch_size and
    start_batch_wait; all at once without them), until `stopped()` says so."""
    batch = flock.start_batch_size or len(users) or 1
    for offset in range(0, len(users), batch):
        if stopped():
            return
        if offset and flock.start_batch_wait:
            await asyncio.sleep(flock.start_batch_wait)
        for user in users[offset : offset + batch]:
            start(user)
        # Let the batch begin before the next one is made.
        await asyncio.sleep(0)


def shutdown_bound(flocks: list[FlockConfig]) -> float:
    """Seconds stopping monkeys may take: the longest lab delete_timeout, plus a grace."""
    bounds = (float(getattr(f.business.parsed_options, "delete_timeout", 10.0)) for f in flocks)
    return max(bounds, default=10.0) + STOP_GRACE_S


async def stop_tasks(tasks: list[asyncio.Task], bound: float) -> int:
    """Cancel the monkeys' tasks and wait up to `bound` seconds for their shutdowns (labs
    deleted); those still running then are cancelled again and abandoned. Returns how many."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return 0
    _, still = await asyncio.wait(pending, timeout=bound)
    if still:
        log.warning("%d monkeys did not stop within %.0f s; abandoning them", len(still), bound)
        for task in still:
            task.cancel()
        await asyncio.wait(still, timeout=1.0)
    return len(still)


def run_flocks(flocks: list[FlockConfig], out_dir: Path, settings: RunSettings) -> ShardResult:
    """Run the flocks to the end in a fresh event loop (the caller's thread)."""
    engine = Engine(flocks, out_dir, settings)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(engine.run())


def _loop_factory():
    """uvloop when installed: per-callback overhead of the loop is what limits a client with
    thousands of open connections; the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
