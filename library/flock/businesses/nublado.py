"""NubladoPythonLoop (formerly JupyterPythonLoop): run a bit of Python in the user's lab."""

from __future__ import annotations

from library.flock.businesses.base import say
from library.flock.businesses.lab import LabBusiness
from library.flock.options import NubladoPythonLoopOptions


class NubladoPythonLoop(LabBusiness[NubladoPythonLoopOptions]):
    async def execute(self) -> bool:
        if self.executions % self.options.max_executions == 0:
            say("Starting next iteration")  # mobu's iteration: max_executions runs in one lab
        code = self.options.code
        reply = await self._kernel().execute(code, self.options.jupyter_timeout)
        say(f"{code} -> {reply.stdout}")  # mobu's line for each execution
        self.executions += 1
        return False

    def cycle_done(self) -> bool:
        """mobu's refresh after every max_executions executions."""
        return self.executions % self.options.max_executions == 0
