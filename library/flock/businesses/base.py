"""What a business is, and what a monkey hands it."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from library.events import Recorder, _Timed
    from library.flock.models import User
    from library.flock.options import BusinessOptions
    from library.flock.shared import Shared

# The options model of a business: each business class names its own, so that its code sees
# the fields of that model (`HTTPLoop(Business[HTTPLoopOptions])`).
OptionsT = TypeVar("OptionsT", bound="BusinessOptions")


class LineSink(Protocol):
    def add(self, text: str) -> None: ...


# The log of the monkey whose task runs now: the standing service sets it for each monkey's
# task (library/service/monkeylog.py); `scale run` leaves it unset. mobu writes its
# per-execution lines ("Starting next iteration", "Running (sync): ...") to a per-monkey
# logger that goes nowhere else; `say` is that logger, at the cost of one lookup when unset.
MONKEY_LOG: ContextVar[LineSink | None] = ContextVar("bosun_monkey_log", default=None)


def say(text: str) -> None:
    """Add one line to the running monkey's log (nothing outside the standing service)."""
    sink = MONKEY_LOG.get()
    if sink is not None:
        sink.add(text)


@dataclass
class MonkeyContext:
    """Everything one monkey's business may use; `timed` fills in flock, monkey and business."""

    flock: str
    business: str
    user: User
    recorder: Recorder
    shared: Shared
    scopes: list[str] = field(default_factory=list)
    # Schedule lag of the execution under way (µs), set by the monkey before each execution;
    # the execution's first recorded event takes it (`take_lag`), the others record 0.
    lag_us: int = 0

    def take_lag(self) -> int:
        lag, self.lag_us = self.lag_us, 0
        return lag

    @property
    def username(self) -> str:
        return self.user.username

    def timed(self, operation: str, target: str = "", rows: int = -1) -> _Timed:
        return self.recorder.timed(
            operation,
            self.user.username,
            target,
            flock=self.flock,
            business=self.business,
            rows=rows,
            lag_us=self.take_lag(),
        )


class Business(Generic[OptionsT]):
    """A monkey's job: `startup`, then `execute` and `idle` in turn, and `shutdown` at the end.

    Every wait must be an ordinary await so that cancelling the monkey's task interrupts it.
    `execute` returns True when the business has nothing more to do.
    """

    def __init__(self, ctx: MonkeyContext, options: OptionsT) -> None:
        self.ctx = ctx
        self.options = options
        self.executions = 0

    async def startup(self) -> None:
        pass

    async def execute(self) -> bool:
        raise NotImplementedError

    async def idle(self) -> None:
        await asyncio.sleep(self.options.idle_time)

    async def shutdown(self) -> None:
        pass

    def shutdown_timeout(self) -> float:
        """Upper bound for `shutdown` when the run stops (labs use their delete_timeout)."""
        return float(getattr(self.options, "delete_timeout", 10.0))

    def describe(self) -> dict[str, Any]:
        return {"executions": self.executions}

    def monkey_data(self) -> dict[str, Any]:
        """mobu's per-business fields of a monkey beyond the counts (its BusinessData
        subclass: ``image``, ``notebook``, ``running_code``, ``running_query``): what the
        business is doing now, a field left out while it is None, as mobu's API leaves it out.
        Read only for the businesses whose registry entry says `data` (not per request)."""
        return {}
