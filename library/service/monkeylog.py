"""Each monkey's log, bounded: the last N lines, for ``GET .../monkeys/{m}/log``.

Lines come from four places: the service's own lifecycle lines (started, paused, stopped),
mobu's per-execution lines that the businesses write (`library.flock.businesses.base.say`:
"Starting next iteration", "Running (sync): ...", "Executing cell 3: ..."), every failed
operation the monkey records (through `LoggingRecorder`), and every log record emitted while
the monkey's task runs (its task carries the log in a context variable, so a business's
``logging`` calls land in its own monkey's log whatever module makes them).

Secrets are masked before any line is read (`lines`, `text`); the masking itself happens
on the first read rather than when a line is added, so that a TAP monkey writing three lines
a query pays microseconds, not the masking's regular expressions, on the monkeys' loop. A line
longer than MAX_LINE_CHARS (a notebook cell and its output) is masked at once, then cut: a
secret cut in two would no longer be recognised.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from library.eventstore import PartitionedRecorder
from library.flock.businesses.base import MONKEY_LOG
from library.redact import redact_text

# The log of the monkey whose task runs now (set by the service for each monkey's task).
CURRENT = MONKEY_LOG
MAX_LINE_CHARS = 4000


class MonkeyLog:
    __slots__ = ("_entries",)

    def __init__(self, max_lines: int) -> None:
        # [time, text, masked yet]
        self._entries: deque[list[Any]] = deque(maxlen=max_lines)

    def add(self, text: str) -> None:
        if len(text) > MAX_LINE_CHARS:
            text = redact_text(text)
            cut = len(text) - MAX_LINE_CHARS
            if cut > 0:
                text = f"{text[:MAX_LINE_CHARS]}... [{cut} more characters]"
            self._entries.append([time.time(), text, True])
        else:
            self._entries.append([time.time(), text, False])

    @property
    def lines(self) -> list[tuple[float, str]]:
        """The kept lines, oldest first, as (time, masked text)."""
        return [(entry[0], _masked(entry)) for entry in list(self._entries)]

    def last(self, prefix: str) -> str | None:
        """The newest line that starts with PREFIX, masked (masking only that line: a page of
        monkeys showing their last error reads one line of each)."""
        for entry in reversed(list(self._entries)):
            if entry[1].startswith(prefix):
                line = _masked(entry)
                if line.startswith(prefix):
                    return line
        return None

    def text(self) -> str:
        return "".join(
            time.strftime("%Y-%m-%d %H:%M:%S ", time.gmtime(at)) + line + "\n"
            for at, line in self.lines
        )


def _masked(entry: list[Any]) -> str:
    if not entry[2]:
        entry[1], entry[2] = redact_text(entry[1]), True
    text: str = entry[1]
    return text


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
