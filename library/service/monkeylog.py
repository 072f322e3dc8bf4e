"""Each monkey's log, bounded: the last N lines, for ``GET .../monkeys/{m}/log``.

Lines come from three places: the service's own lifecycle lines (started, paused, stopped),
every failed operation the monkey records (through `LoggingRecorder`), and every log record
emitted while the monkey's task runs (its task carries the log in a context variable, so a
business's ``logging`` calls land in its own monkey's log whatever module makes them).
Secrets are masked when a line is added.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import deque
from typing import Any

from library.eventstore import PartitionedRecorder
from library.redact import redact_text

CURRENT: contextvars.ContextVar[MonkeyLog | None] = contextvars.ContextVar(
    "bosun_monkey_log", default=None
)


class MonkeyLog:
    __slots__ = ("lines",)

    def __init__(self, max_lines: int) -> None:
        self.lines: deque[tuple[float, str]] = deque(maxlen=max_lines)

    def add(self, text: str) -> None:
        self.lines.append((time.time(), redact_text(text)))

    def text(self) -> str:
        return "".join(
            time.strftime("%Y-%m-%d %H:%M:%S ", time.gmtime(at)) + line + "\n"
            for at, line in list(self.lines)
        )


class ContextLogHandler(logging.Handler):
    """Copies records emitted inside a monkey's task into that monkey's log."""

    def emit(self, record: logging.LogRecord) -> None:
        target = CURRENT.get()
        if target is None:
            return
        try:
            target.add(f"{record.levelname} {record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never break a monkey
            self.handleError(record)


class LoggingRecorder(PartitionedRecorder):
    """The service's recorder (hour partitions, `library.eventstore`): every failure also goes
    to its monkey's log."""

    def __init__(self, *args: Any, logs: dict[tuple[str, str], MonkeyLog], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logs = logs

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
        flock: str | None = None,
        business: str | None = None,
        lag_us: int = 0,
    ) -> None:
        super().record(
            operation,
            start_us,
            duration_us,
            success,
            monkey,
            target,
            error_class,
            error,
            rows,
            flock,
            business,
            lag_us,
        )
        if not success:
            log = self.logs.get((flock or self.flock, monkey))
            if log is not None:
                where = f" {target}" if target else ""
                log.add(f"ERROR {operation}{where}: {error_class}: {error}")
