"""Progress of a long step: a rich bar in a terminal, a plain line every 10 s otherwise.

Thread-safe, so the workers of a query set can all advance the same counter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Protocol

log = logging.getLogger(__name__)
PLAIN_EVERY_S = 10.0


class Advance(Protocol):
    """``advance(n=1)``: ``n`` more units of the step are done."""

    def __call__(self, n: int = 1) -> None: ...


def _interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextlib.contextmanager
def progress(total: int, description: str) -> Iterator[Advance]:
    """Yield ``advance(n=1)``; show how far ``total`` the step got, and how fast."""
    lock = threading.Lock()
    state = {"done": 0, "last": time.monotonic()}
    start = time.monotonic()
    if _interactive():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[bold]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1) -> None:
                with lock:
                    bar.advance(task, n)

            yield advance
        return

    def advance_plain(n: int = 1) -> None:
        with lock:
            state["done"] += n
            now = time.monotonic()
            if now - state["last"] >= PLAIN_EVERY_S and state["done"] < total:
                state["last"] = now
                log.info("%s: %d/%d after %.0f s", description, state["done"], total, now - start)

    yield advance_plain
