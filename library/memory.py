"""Giving the C heap's free memory back to the system (glibc's `malloc_trim`).

glibc keeps what a process freed in its arenas, fragmented, and the resident set does not
fall: after a load's monkeys are torn down, or after a flush drops its buffers. Where that
memory is needed again soon by something else (the summary reading the events back, the
service's next hour), returning it first keeps the process's peak down.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim(pad)`, or None where there is none (musl, macOS)."""
    # Loaded when first needed: ctypes costs a load process about 1 MiB.
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the free pages of every arena to the system; False where that is not possible."""
    trim = malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
