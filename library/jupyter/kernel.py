"""A kernel in a lab, driven over its websocket channel."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING

from library.artifacts import Operation
from library.jupyter.errors import ExecutionError, ExecutionTimeout, JupyterError, KernelDied
from library.jupyter.messages import (
    Execution,
    ExecutionResult,
    Outcome,
    decode,
    execute_request,
)

if TYPE_CHECKING:
    import aiohttp

    from library.jupyter.lab import LabSession
    from library.jupyter.timing import TimingRecorder

# Frames can carry large outputs (images, tables); aiohttp's 4 MiB default is too small.
MAX_FRAME = 256 * 1024 * 1024
INTERRUPT_GRACE_S = 10.0


class Kernel:
    """One kernel session: execute code, one request at a time, then close.

    Created by ``LabSession.open_kernel``. After a ``KernelDied`` the object refuses further
    work: the process that held the user's state is gone even if the server restarted it.
    """

    def __init__(
        self,
        lab: LabSession,
        kernel_id: str,
        api_session: str,
        client_session: str,
        ws: aiohttp.ClientWebSocketResponse,
        recorder: TimingRecorder,
        path: str,
    ):
        self.lab = lab
        self.kernel_id = kernel_id
        # The server's session resource (deleted on close) and the messaging session id (sent
        # in every message header) are different things.
        self.api_session = api_session
        self.session_id = client_session
        self.notebook_path = path
        self._ws = ws
        self._rec = recorder
        self._lock = asyncio.Lock()
        self.dead: str | None = None
        self.executions = 0

    @property
    def user(self) -> str:
        return self.lab.user

    async def execute(
        self, code: str, timeout: float = 60.0, *, target: str = "", record: bool = True
    ) -> ExecutionResult:
        """Run CODE; return its outputs or raise ExecutionError / ExecutionTimeout / KernelDied."""
        if record:
            with self._rec.timed(Operation.EXECUTE_CODE, monkey=self.user, target=target):
                return await self._execute(code, timeout)
        return await self._execute(code, timeout)

    async def _execute(self, code: str, timeout: float) -> ExecutionResult:
        import aiohttp

        if self.dead:
            raise KernelDied(f"already dead ({self.dead})", user=self.user, code=code)
        async with self._lock:
            msg = execute_request(code, self.session_id, self.user)
            execution = Execution(msg["header"]["msg_id"])
            started = time.perf_counter()
            try:
                await self._ws.send_json(msg)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                self.dead = f"websocket send failed: {type(exc).__name__}"
                raise KernelDied(self.dead, user=self.user, code=code) from None
            try:
                async with asyncio.timeout(timeout):
                    outcome = await self._read_until_done(execution)
            except TimeoutError:
                self.executions += 1
                await self._interrupt(execution)
                raise ExecutionTimeout(timeout, user=self.user, code=code) from None
            self.executions += 1
            execution.result.duration_s = time.perf_counter() - started
            if outcome.died:
                self.dead = outcome.died
                raise KernelDied(outcome.died, user=self.user, code=code)
            if outcome.error:
                raise ExecutionError(
                    outcome.error["ename"],
                    outcome.error["evalue"],
                    outcome.error["traceback"],
                    user=self.user,
                    code=code,
                    stdout=execution.result.stdout,
                    stderr=execution.result.stderr,
                )
            return execution.result

    async def _read_until_done(self, execution: Execution) -> Outcome:
        import aiohttp

        closed = {
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        }
        while True:
            frame = await self._ws.receive()
            if frame.type in closed:
                return Outcome(died="kernel websocket closed")
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            msg = decode(frame.data)
            if msg is None:
                continue
            outcome = execution.feed(msg)
            if outcome.done or outcome.died:
                return outcome

    async def _interrupt(self, execution: Execution) -> None:
        """Stop the runaway code and wait for its reply, so the kernel can serve the next request.

        Without the wait, a request sent right away lands in the kernel's abort window after
        the KeyboardInterrupt and comes back "aborted".
        """
        with contextlib.suppress(JupyterError, OSError):
            await self.lab.http.request(
                "POST", self.lab.lab_api(f"kernels/{self.kernel_id}/interrupt")
            )
        try:
            async with asyncio.timeout(INTERRUPT_GRACE_S):
                outcome = await self._read_until_done(execution)
        except TimeoutError:
            self.dead = f"still busy {INTERRUPT_GRACE_S:g} s after an interrupt"
            return
        if outcome.died:
            self.dead = outcome.died

    async def aclose(self, *, shutdown: bool = True) -> None:
        """Close the websocket and, unless told otherwise, shut the kernel down."""
        if not self._ws.closed:
            await self._ws.close()
        if shutdown:
            # A lab deleted underneath us has no sessions left to clean.
            with contextlib.suppress(JupyterError, OSError):
                await self.lab.http.request(
                    "DELETE", self.lab.lab_api(f"sessions/{self.api_session}"), ok=(204, 404)
                )


def new_session_id() -> str:
    return uuid.uuid4().hex
