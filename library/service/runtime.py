"""What every flock of the service shares: the recorder, the HTTP session and the platform,
the monkeys' logs, and the context their tasks start from."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from pathlib import Path
from typing import Any

from library.flock.shared import Shared
from library.service.monkeylog import LoggingRecorder, MonkeyLog

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        events_dir: Path,
        endpoints: dict[str, Any],
        *,
        flush_interval: float = 10.0,
        log_lines: int = 200,
        pause_labs: str = "release",
    ) -> None:
        self.logs: dict[tuple[str, str], MonkeyLog] = {}
        self.recorder = LoggingRecorder(events_dir, logs=self.logs)
        self.shared = Shared(endpoints)
        self.flush_interval = flush_interval
        self.log_lines = log_lines
        self.pause_labs = pause_labs
        # Monkey tasks start from the service's context (artifact dir, secrets to mask), not
        # from the request handler's that created them.
        self.context = contextvars.copy_context()
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Arrow on the C allocator, its Parquet writer set up before the monkeys start: with
        # mimalloc, the hour's first compaction left the service 34 MiB larger for good.
        await asyncio.to_thread(self.recorder.prepare)
        self._flusher = asyncio.create_task(self._flush_loop(), name="events-flush")

    async def _flush_loop(self) -> None:
        # Events reach disk at least every flush_interval: a killed process loses no more.
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                self.recorder.flush(wait=False)
            except OSError as exc:
                log.warning("writing events failed (kept in memory, retried): %s", exc)

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.shared.close()
        await asyncio.to_thread(self.recorder.close)
