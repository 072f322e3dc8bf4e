"""NubladoPythonLoop (formerly JupyterPythonLoop): run a bit of Python in the user's lab."""

from __future__ import annotations

from library.flock.businesses.lab import LabBusiness


class NubladoPythonLoop(LabBusiness):
    async def execute(self) -> bool:
        await self.kernel.execute(self.options.code, self.options.jupyter_timeout)
        self.executions += 1
        return False
