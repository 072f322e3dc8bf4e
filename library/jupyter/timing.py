"""Timing hooks: a Recorder from library.events, or nothing when the caller wants none."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class NoRecorder:
    """Stands in for library.events.Recorder when the caller records nothing."""

    @contextlib.contextmanager
    def timed(self, operation: str, **_fields: object) -> Iterator[None]:
        yield

    def record(self, *_args: object, **_kwargs: object) -> None:
        return None


def now_us() -> int:
    return time.time_ns() // 1000
