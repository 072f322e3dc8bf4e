"""Timing hooks: a Recorder from library.events, or nothing when the caller wants none."""

from __future__ import annotations

import contextlib
import time


class NoRecorder:
    """Stands in for library.events.Recorder when the caller records nothing."""

    @contextlib.contextmanager
    def timed(self, operation: str, **_fields):
        yield

    def record(self, *_args, **_kwargs) -> None:
        return None


def now_us() -> int:
    return time.time_ns() // 1000
