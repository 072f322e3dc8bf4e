"""The lab lifecycle that Nublado businesses share: spawn, kernel, refresh, delete."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, TypeVar

from library.errors import UserError, one_line
from library.flock.businesses.base import Business, say
from library.flock.options import NubladoOptions
from library.jupyter.hub import HubClient

if TYPE_CHECKING:
    from library.events import _Timed
    from library.flock.businesses.base import MonkeyContext
    from library.jupyter.hub import HubClient
    from library.jupyter.kernel import Kernel
    from library.jupyter.lab import LabSession

LabOptionsT = TypeVar("LabOptionsT", bound=NubladoOptions)

# mobu's question to a new lab session: which image is this (Nublado labs have both variables;
# the sandbox's spawn form sets them too).
GET_IMAGE = """
import os
print(
    os.getenv("JUPYTER_IMAGE_SPEC"),
    os.getenv("IMAGE_DESCRIPTION"),
    sep="\\n",
)
"""


class FlockRecorder:
    """The recorder interface the Jupyter client calls, with this monkey's flock and business."""

    def __init__(self, ctx: MonkeyContext) -> None:
        self._ctx = ctx
        self._rec = ctx.recorder
        self._flock = ctx.flock
        self._business = ctx.business

    def timed(self, operation: str, monkey: str = "", target: str = "", **_: object) -> _Timed:
        return self._rec.timed(
            operation,
            monkey,
            target,
            flock=self._flock,
            business=self._business,
            lag_us=self._ctx.take_lag(),
        )

    def record(
        self,
        operation: str,
        start_us: int,
        duration_us: int,
        success: bool = True,
        monkey: str = "",
        target: str = "",
        error_class: str = "",
        error: str = "",
        rows: int = -1,
        **_: object,
    ) -> None:
        self._rec.record(
            operation,
            start_us,
            duration_us,
            success,
            monkey,
            target,
            error_class,
            error,
            rows,
            self._flock,
            self._business,
            self._ctx.take_lag(),
        )


class LabBusiness(Business[LabOptionsT]):
    """Spawns the user's lab at startup, refreshes it when `cycle_done`, deletes it last."""

    hub: HubClient | None = None
    lab: LabSession | None = None
    kernel: Kernel | None = None
    # mobu's RunningImage ({reference, description}) while a lab runs, for the monkey's JSON.
    image: dict[str, str] | None = None

    async def startup(self) -> None:
        hub_url = self.ctx.shared.platform().require("hub_url")
        # This monkey's own user's token, with the flock's scopes (the provider creates the
        # user first where the platform allows it).
        token = await self.ctx.shared.token_for(self.ctx.user, self.ctx.scopes)
        if token is None:
            raise UserError("no token provider for the hub: pass --token-file")
        self.recorder = FlockRecorder(self.ctx)
        self.hub = HubClient(
            hub_url, None, connector=self.ctx.shared.connector(), recorder=self.recorder
        )
        say("Logging in to hub")
        self.lab = await self.hub.lab_session(self.ctx.username, token)
        await self._spawn()

    def _session(self) -> LabSession:
        if self.lab is None:
            raise RuntimeError("the lab session is opened by startup")
        return self.lab

    def _kernel(self) -> Kernel:
        if self.kernel is None:
            raise RuntimeError("the kernel is opened by startup")
        return self.kernel

    async def _spawn(self) -> None:
        lab = self._session()
        image = self.options.image
        if hasattr(image, "to_spawn_form"):
            # As mobu: the image's spawn-form fields (class, reference or tag; size; debug),
            # posted as they are; a hub that does not offer them refuses, never substitutes.
            await lab.spawn_lab(
                timeout=self.options.spawn_timeout, via="form", form_fields=image.to_spawn_form()
            )
        else:
            await lab.spawn_lab(
                timeout=self.options.spawn_timeout, image=image if isinstance(image, str) else None
            )
        say("Creating lab session")
        self.kernel = await lab.open_kernel()
        await self._read_image(self.kernel)

    async def _read_image(self, kernel: Kernel) -> None:
        """mobu's setup of a lab session: ask the lab which image it runs (not timed: it is
        not the business's work). A lab that cannot say shows no image, as in mobu."""
        try:
            reply = await kernel.execute(GET_IMAGE, self.options.jupyter_timeout, record=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the next execution meets a broken kernel
            say(f"Unable to get running image: {type(exc).__name__}: {one_line(str(exc))}")
            return
        self.image = running_image(reply.stdout)
        if self.image is None:
            say(f"Unable to get running image from reply: {reply.stdout!r}")
        else:
            description = self.image.get("description")
            about = f" ({description})" if description else ""
            say(f"Running on image {self.image.get('reference', 'unknown')}{about}")

    def monkey_data(self) -> dict[str, Any]:
        return {} if self.image is None else {"image": self.image}

    async def refresh(self) -> None:
        """mobu's cycle: after max_executions the lab is deleted (if delete_lab) and respawned."""
        await self._close_kernel()
        if self.options.delete_lab:
            await self._delete_lab(self._session())
        await self._spawn()

    async def _delete_lab(self, lab: LabSession) -> None:
        say("Deleting lab")
        self.image = None
        await lab.delete_lab(timeout=self.options.delete_timeout)
        say("Lab successfully deleted")

    async def _close_kernel(self) -> None:
        if self.kernel is not None:
            say("Deleting lab session")
            kernel, self.kernel = self.kernel, None
            # The lab is deleted next: a kernel that will not close cleanly does not matter.
            with contextlib.suppress(Exception):
                await kernel.aclose()

    def cycle_done(self) -> bool:
        """Whether the lab is due for mobu's refresh (each business says when)."""
        raise NotImplementedError

    async def idle(self) -> None:
        cycle_done = self.cycle_done()
        if cycle_done:
            say("Idling...")
        await asyncio.sleep(
            self.options.idle_time if cycle_done else self.options.execution_idle_time
        )
        if cycle_done:
            await self.refresh()

    async def shutdown(self) -> None:
        try:
            await self._close_kernel()
            if self.lab is not None and self.options.delete_lab:
                await self._delete_lab(self.lab)
        finally:
            self.image = None
            if self.lab is not None:
                await self.lab.aclose()
                self.lab = None
            if self.hub is not None:
                await self.hub.aclose()
                self.hub = None


def running_image(stdout: str) -> dict[str, str] | None:
    """mobu's RunningImage from GET_IMAGE's two lines; a variable the lab lacks ("None") is
    left out, as mobu's API leaves out None; None when the reply is not two lines."""
    if "\n" not in stdout:
        return None
    reference, description = (part.strip() for part in stdout.split("\n", 1))
    image = {
        key: value
        for key, value in (("reference", reference), ("description", description))
        if value and value != "None"
    }
    return image or None
