"""Timing hooks: a Recorder from library.events, or nothing when the caller wants none."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, Protocol


class TimingRecorder(Protocol):
    """What the Jupyter clients time their operations with: `library.events.Recorder`, a
    flock's adapter (`library.flock.businesses.lab.FlockRecorder`) or `NoRecorder`."""

    def timed(
        self, operation: str, *, monkey: str = ..., target: str = ...
    ) -> contextlib.AbstractContextManager[Any]: ...

    def record(
        self,
        operation: str,
        start_us: int,
        duration_us: int,
        success: bool = ...,
        monkey: str = ...,
        target: str = ...,
        error_class: str = ...,
        error: str = ...,
        rows: int = ...,
    ) -> None: ...


class NoRecorder:
    """Stands in for library.events.Recorder when the caller records nothing."""

    @contextlib.contextmanager
    def timed(self, operation: str, **_fields: object) -> Iterator[None]:
        yield

    def record(self, *_args: object, **_kwargs: object) -> None:
        return None


def now_us() -> int:
    return time.time_ns() // 1000
