"""One monkey: a bot user running its business until the run stops or the business ends."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from library.artifacts import Operation
from library.events import now_us, short_error
from library.flock.businesses import business_class, main_operation
from library.flock.businesses.base import Business, MonkeyContext
from library.stats import BEHIND_SCHEDULE_PCT, percentiles

if TYPE_CHECKING:
    from library.events import Recorder
    from library.flock.businesses.base import Business
    from library.flock.health import HealthSampler
    from library.flock.models import FlockConfig, User
    from library.flock.shared import Shared

STARTING, RUNNING, IDLE, ERROR, STOPPED = "starting", "running", "idle", "error", "stopped"
CONTINUE, RESUMED, RESTART = 0, 1, 2  # what FlockStats.checkpoint answers
BEHIND_FRACTION = BEHIND_SCHEDULE_PCT / 100.0


class Schedule:
    """When a monkey means to start its next execution: coordinated omission, measured.

    The plan is mobu's: run, then idle for `idle_time`. The intended start of the next
    execution is the intended start of this one plus its typical duration plus the idle time,
    so a client that wakes late (event-loop lag) or a platform that stalls once does not move
    the plan: the monkey falls behind it, the lag (actual - intended start) is recorded with
    the next executions, and the monkey skips its idle until it has caught up, as a user who
    meant to act at those times would have (unless the engine's own loop is saturated: then
    catching up would only lengthen its queue, so the monkey idles and the lag grows). The
    typical duration follows the measured ones (a moving average, quick down and slow up), but
    one execution counts for at most twice the typical: a stall is lateness against the plan,
    not a new plan.
    """

    __slots__ = ("idle_ns", "typical_ns")

    def __init__(self, idle_time: float | None) -> None:
        self.idle_ns = int((idle_time or 0.0) * 1e9)
        self.typical_ns = -1  # none measured yet

    def next_start(self, intended_ns: int, duration_ns: int) -> int:
        typical = self.typical_ns
        if typical < 0:
            step = self.typical_ns = duration_ns
        else:
            step = min(duration_ns, 2 * typical)
            # Quick to follow faster executions, slow to believe slower ones: a client that
            # saturates inflates the durations it measures, and must not lower its own plan.
            self.typical_ns = typical + ((step - typical) >> (4 if step > typical else 1))
        return intended_ns + step + self.idle_ns

    @property
    def period_s(self) -> float | None:
        """The planned time between two starts; None before the first execution."""
        return None if self.typical_ns < 0 else (self.typical_ns + self.idle_ns) / 1e9


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
        # Schedule lag of the same recent executions (0 for businesses that are not paced):
        # lag + duration is the latency from the intended start.
        self.recent_lag_ms: deque[float] = deque(maxlen=2000)
        self._mark: tuple[float, int] = (0.0, 0)
        self._achieved: float | None = None
        # Awaited by each monkey before each execution when set (the standing service):
        # CONTINUE, RESUMED (it waited: its schedule starts again) or RESTART (a fresh business).
        self.checkpoint: Callable[[Monkey], Awaitable[int]] | None = None

    def schedule_figures(self) -> dict[str, float | bool | None]:
        """Intended vs achieved executions/s now (achieved over the time since the previous
        call, at least 1 s) and the corrected p95 over the recent executions; None for a flock
        whose monkeys are not scheduled."""
        intended = self.intended_per_s()
        now = time.monotonic()
        mark_t, mark_n = self._mark
        if now - mark_t >= 1.0:
            self._achieved = (self.successes - mark_n) / (now - mark_t) if mark_t else None
            self._mark = (now, self.successes)
        if not intended or self._achieved is None:
            return {"intended_per_s": None, "achieved_per_s": None, "behind_schedule": None}
        pairs = zip(list(self.recent_ms), list(self.recent_lag_ms), strict=False)
        # Same percentile rule as every other figure (library/stats.py).
        (corrected_p95,) = percentiles([d + lag for d, lag in pairs], (95,))
        return {
            "intended_per_s": intended,
            "achieved_per_s": self._achieved,
            "behind_schedule": self._achieved < intended * BEHIND_FRACTION,
            "corrected_p95_ms": corrected_p95,
        }

    def intended_per_s(self) -> float:
        """Executions per second the flock's monkeys mean to run (their planned periods)."""
        total = 0.0
        for monkey in list(self.monkeys):
            period = monkey.schedule.period_s if monkey.schedule is not None else None
            if period and monkey.state in (RUNNING, IDLE):
                total += 1.0 / period
        return total

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
        health: HealthSampler | None = None,
    ) -> None:
        self.flock = flock
        self.user = user
        self.recorder = recorder
        self.shared = shared
        self.stats = stats
        self.state = STARTING
        self.business: Business[Any] | None = None
        self.schedule: Schedule | None = None
        self.health = health
        stats.monkeys.append(self)

    def _event(
        self, operation: str, start: int, success: bool = True, exc: BaseException | None = None
    ) -> None:
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

    async def _loop(self, business: Business[Any]) -> bool:
        """Execute and idle in turn, keeping the schedule (see `Schedule`)."""
        stats = self.stats
        health = self.health
        ctx = business.ctx
        perf = time.perf_counter_ns
        sleep = asyncio.sleep
        recent, recent_lag = stats.recent_ms.append, stats.recent_lag_ms.append
        # Not scheduled (lag 0): a business with its own idle (labs refresh there), and a
        # flock without idle time, whose plan is "as fast as it goes".
        paced = type(business).idle is Business.idle and business.options.idle_time > 0
        self.schedule = schedule = Schedule(business.options.idle_time if paced else None)
        intended = perf()
        while True:
            # The standing service's pause (wait here, lab kept) and refresh (a fresh
            # business, so notebook runners re-read their repository).
            if stats.checkpoint is not None:
                step = await stats.checkpoint(self)
                if step == RESTART:
                    return False
                if step == RESUMED:
                    intended = perf()  # a pause is not lateness: the plan starts again
            self.state = RUNNING
            t0 = perf()
            lag = t0 - intended if paced and t0 > intended else 0
            ctx.lag_us = lag // 1000
            done = await business.execute()
            duration = perf() - t0
            recent(duration / 1e6)
            recent_lag(lag / 1e6)
            stats.successes += 1
            if done:
                return True
            self.state = IDLE
            if paced:
                intended = schedule.next_start(intended, duration)
                wait = intended - perf()
                if wait <= 0 and health is not None and health.saturated:
                    # Behind, but the client itself is the bottleneck: idle as configured and
                    # let the lag grow (recorded) rather than burst into the client's queue.
                    wait = schedule.idle_ns
                # Otherwise, behind schedule: no idle until caught up (a zero sleep yields).
                await sleep(max(0, wait) / 1e9)
            else:
                await business.idle()

    async def _shutdown(self, business: Business[Any]) -> None:
        try:
            async with asyncio.timeout(business.shutdown_timeout()):
                await business.shutdown()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded; a failed cleanup must not hide the run
            self._event(Operation.MONKEY_ERROR, now_us(), False, exc)
            self.stats.failures += 1
