"""NubladoPythonLoop (formerly JupyterPythonLoop): run a bit of Python in the user's lab."""

from __future__ import annotations

from library.flock.businesses.lab import LabBusiness
from library.flock.options import NubladoPythonLoopOptions


class NubladoPythonLoop(LabBusiness[NubladoPythonLoopOptions]):
    async def execute(self) -> bool:
        await self._kernel().execute(self.options.code, self.options.jupyter_timeout)
        self.executions += 1
        return False

    def cycle_done(self) -> bool:
        """mobu's refresh after every max_executions executions."""
        return self.executions % self.options.max_executions == 0
