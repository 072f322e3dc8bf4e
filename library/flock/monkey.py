"""One monkey: a bot user running its business until the run stops or the business ends."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import TYPE_CHECKING

from library.artifacts import Operation
from library.events import now_us, short_error
from library.flock.businesses import business_class, main_operation

if TYPE_CHECKING:
    from library.events import Recorder
    from library.flock.models import FlockConfig, User
    from library.flock.shared import Shared

STARTING, RUNNING, IDLE, ERROR, STOPPED = "starting", "running", "idle", "error", "stopped"


class FlockStats:
    """Live counters of one flock in this process, for the live view (events stay the truth)."""

    def __init__(self, flock: FlockConfig) -> None:
        self.name = flock.name
        self.business = flock.business.type
        self.operation = main_operation(flock.business.type)
        self.count = 0
        self.started = 0
        self.successes = 0
        self.failures = 0
        self.monkeys: list[Monkey] = []
        self.recent_ms: deque[float] = deque(maxlen=2000)

    def states(self) -> dict[str, int]:
        counts = dict.fromkeys((STARTING, RUNNING, IDLE, ERROR, STOPPED), 0)
        for monkey in self.monkeys:
            counts[monkey.state] += 1
        return counts


class Monkey:
    def __init__(
        self,
        flock: FlockConfig,
        user: User,
        recorder: Recorder,
        shared: Shared,
        stats: FlockStats,
    ) -> None:
        self.flock = flock
        self.user = user
        self.recorder = recorder
        self.shared = shared
        self.stats = stats
        self.state = STARTING
        self.business = None
        stats.monkeys.append(self)

    def _event(self, operation: str, start: int, success: bool = True, exc=None) -> None:
        self.recorder.record(
            operation,
            start,
            now_us() - start,
            success,
            self.user.username,
            "",
            "" if exc is None else type(exc).__name__,
            "" if exc is None else short_error(exc),
            flock=self.flock.name,
            business=self.flock.business.type,
        )

    async def run(self) -> None:
        """Run until cancelled, or until the business ends or fails without `restart`."""
        from library.flock.businesses.base import MonkeyContext

        config = self.flock.business
        options = config.parsed_options
        cls = business_class(config.type)
        ctx = MonkeyContext(
            self.flock.name,
            config.type,
            self.user,
            self.recorder,
            self.shared,
            list(self.flock.scopes),
        )
        self.stats.started += 1
        begin = now_us()
        try:
            jitter = getattr(options, "jitter", 0.0)  # mobu: Nublado businesses only
            if jitter:
                await asyncio.sleep(random.uniform(0, jitter))
            while True:
                self.business = business = cls(ctx, options)
                self.state = STARTING
                try:
                    start = now_us()
                    await business.startup()
                    self._event(Operation.MONKEY_START, start)
                    finished = await self._loop(business)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.state = ERROR
                    self.stats.failures += 1
                    self._event(Operation.MONKEY_ERROR, now_us(), False, exc)
                    await self._shutdown(business)
                    self.business = None
                    if not config.restart:
                        return
                    await asyncio.sleep(options.error_idle_time)
                    continue
                await self._shutdown(business)
                self.business = None
                if finished:
                    return
        except asyncio.CancelledError:
            # Stopping: the lab (if any) must still go. A second cancellation (a second
            # SIGINT) interrupts this shutdown too.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if self.business is not None:
                await self._shutdown(self.business)
        finally:
            self.state = STOPPED
            self._event(Operation.MONKEY_STOP, begin)

    async def _loop(self, business) -> bool:
        stats = self.stats
        perf = time.perf_counter
        while True:
            self.state = RUNNING
            t0 = perf()
            done = await business.execute()
            stats.recent_ms.append((perf() - t0) * 1000.0)
            stats.successes += 1
            if done:
                return True
            self.state = IDLE
            await business.idle()

    async def _shutdown(self, business) -> None:
        try:
            async with asyncio.timeout(business.shutdown_timeout()):
                await business.shutdown()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded; a failed cleanup must not hide the run
            self._event(Operation.MONKEY_ERROR, now_us(), False, exc)
            self.stats.failures += 1
