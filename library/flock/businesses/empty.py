"""EmptyLoop: no work at all, so that the engine itself is what gets measured."""

from __future__ import annotations

from library.artifacts import Operation
from library.flock.businesses.base import Business
from library.flock.options import EmptyLoopOptions


class EmptyLoop(Business[EmptyLoopOptions]):
    async def execute(self) -> bool:
        with self.ctx.timed(Operation.EMPTY_LOOP):
            self.executions += 1
        return False
