"""The live view: a rich table per flock in a terminal, a plain status line every 10 s in CI."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from library.flock.engine import Engine

log = logging.getLogger(__name__)
PLAIN_EVERY_S = 10.0


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def snapshot(engine: Engine) -> list[dict]:
    """One dict per flock with the figures both views show."""
    rows = []
    elapsed = max(1e-6, time.time() - engine.started_wall) if engine.started_wall else 1e-6
    for stats in engine.stats.values():
        states = stats.states()
        recent = sorted(stats.recent_ms)
        total = stats.successes + stats.failures
        rows.append(
            {
                "flock": stats.name,
                "business": stats.business,
                "running": states["running"] + states["starting"],
                "idle": states["idle"],
                "error": states["error"],
                "successes": stats.successes,
                "failures": stats.failures,
                "success_pct": 100.0 * stats.successes / total if total else 100.0,
                "ops_s": stats.successes / elapsed,
                "p50_ms": percentile(recent, 0.50),
                "p95_ms": percentile(recent, 0.95),
                "operation": stats.operation,
            }
        )
    return rows


def status_line(engine: Engine) -> str:
    parts = [
        f"{r['flock']}: {r['running']} running/{r['idle']} idle/{r['error']} error,"
        f" {r['successes']} ok, {r['failures']} failed ({r['success_pct']:.2f}%),"
        f" {r['ops_s']:.1f} ops/s, {r['operation']} p50 {r['p50_ms']:.0f} ms"
        f" p95 {r['p95_ms']:.0f} ms"
        for r in snapshot(engine)
    ]
    return " | ".join(parts) + f" | loop lag {engine.health.last_lag_ms:.0f} ms"


def _table(engine: Engine):
    from rich.table import Table

    table = Table(title=f"scale run — loop lag {engine.health.last_lag_ms:.0f} ms")
    for header in (
        "flock",
        "running",
        "idle",
        "error",
        "ok",
        "failed",
        "success %",
        "ops/s",
        "p50 ms",
        "p95 ms",
    ):
        table.add_column(header, justify="left" if header == "flock" else "right")
    for r in snapshot(engine):
        table.add_row(
            f"{r['flock']} ({r['operation']})",
            str(r["running"]),
            str(r["idle"]),
            str(r["error"]),
            str(r["successes"]),
            str(r["failures"]),
            f"{r['success_pct']:.2f}",
            f"{r['ops_s']:.1f}",
            f"{r['p50_ms']:.0f}",
            f"{r['p95_ms']:.0f}",
        )
    return table


class LiveView:
    """Refreshes from a daemon thread so that a busy event loop cannot freeze the display."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.plain = bool(os.environ.get("CI")) or not sys.stdout.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None

    def start(self) -> None:
        if not self.plain:
            from rich.live import Live

            self._live = Live(_table(self.engine), refresh_per_second=2, transient=False)
            self._live.start()
        self._thread = threading.Thread(target=self._loop, name="live-view", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        every = PLAIN_EVERY_S if self.plain else 0.5
        while not self._stop.wait(every):
            try:
                if self.plain:
                    log.info("%s", status_line(self.engine))
                else:
                    self._live.update(_table(self.engine))
            except RuntimeError:
                # The monkey list changed while being read; the next refresh will show it.
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._live is not None:
            self._live.update(_table(self.engine))
            self._live.stop()
        elif self.plain:
            log.info("%s", status_line(self.engine))
