"""The live view: a rich table per flock in a terminal, a plain status line every 10 s in CI."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

from library.flock.summary import flock_figures
from library.stats import percentiles

if TYPE_CHECKING:
    from rich.live import Live

    from library.flock.engine import Engine

log = logging.getLogger(__name__)
PLAIN_EVERY_S = 10.0
# Intended vs achieved (scheduled flocks only; None otherwise), from the monkeys' schedules
# while the run goes and from library/stats.py for the last line.
SCHEDULE_KEYS = ("intended_per_s", "achieved_per_s", "behind_schedule", "corrected_p95_ms")


def snapshot(engine: Engine, final: dict[str, dict] | None = None) -> list[dict]:
    """One dict per flock with the figures both views show.

    While the run goes, latency is over the last executions each flock kept in memory (a
    window); `final` (from `library.flock.summary.flock_figures`, i.e. every event on disk by
    the one rule of library/stats.py) replaces counts and percentiles for the last line, so that
    it says what summary.json and the report say.
    """
    rows = []
    elapsed = max(1e-6, time.time() - engine.started_wall) if engine.started_wall else 1e-6
    for stats in engine.stats.values():
        states = stats.states()
        figures = (final or {}).get(stats.name)
        if figures is not None:
            successes, failures = figures["successes"], figures["failures"]
            main = figures["operations"].get(stats.operation, {})
            p50, p95 = main.get("p50_ms"), main.get("p95_ms")
            schedule = {k: main.get(k) for k in SCHEDULE_KEYS}
        else:
            successes, failures = stats.successes, stats.failures
            p50, p95 = percentiles(list(stats.recent_ms), (50, 95))
            schedule = stats.schedule_figures()
        total = successes + failures
        rows.append(
            {
                "flock": stats.name,
                "business": stats.business,
                "running": states["running"] + states["starting"],
                "idle": states["idle"],
                "error": states["error"],
                "successes": successes,
                "failures": failures,
                "success_pct": 100.0 * successes / total if total else 100.0,
                "ops_s": successes / elapsed,
                "p50_ms": p50,
                "p95_ms": p95,
                "operation": stats.operation,
                **{k: schedule.get(k) for k in SCHEDULE_KEYS},
            }
        )
    return rows


def ms_text(value: float | None) -> str:
    """Milliseconds as the summary holds them (3 decimals, trailing zeros dropped), or -."""
    if value is None:
        return "-"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def schedule_text(r: dict) -> str:
    """', intended X/s achieved Y/s (Z%) p95 from intended start W ms[, BEHIND SCHEDULE]'."""
    if not r.get("intended_per_s") or r.get("achieved_per_s") is None:
        return ""
    pct = 100.0 * r["achieved_per_s"] / r["intended_per_s"]
    text = (
        f", intended {r['intended_per_s']:.1f}/s achieved {r['achieved_per_s']:.1f}/s ({pct:.1f}%)"
    )
    if r.get("corrected_p95_ms") is not None:
        text += f" p95 from intended start {ms_text(round(r['corrected_p95_ms'], 3))} ms"
    return text + (", BEHIND SCHEDULE" if r.get("behind_schedule") else "")


def status_line(engine: Engine, final: dict[str, dict] | None = None) -> str:
    parts = [
        f"{r['flock']}: {r['running']} running/{r['idle']} idle/{r['error']} error,"
        f" {r['successes']} ok, {r['failures']} failed ({r['success_pct']:.2f}%),"
        f" {r['ops_s']:.1f} ops/s, {r['operation']} p50 {ms_text(r['p50_ms'])} ms"
        f" p95 {ms_text(r['p95_ms'])} ms" + schedule_text(r)
        for r in snapshot(engine, final)
    ]
    return " | ".join(parts) + f" | loop lag {engine.health.last_lag_ms:.0f} ms"


def final_figures(engine: Engine) -> dict[str, dict] | None:
    """Every event recorded so far, by the summary's own computation; None if unreadable."""
    try:
        engine.recorder.flush(wait=True)
        engine.recorder.wait()
        engine.recorder.encode()
        return flock_figures(engine.out_dir, engine.flocks)
    except Exception as exc:  # noqa: BLE001 - the view must not fail the run; the summary will say
        log.warning("live view: reading the events for the last line failed: %s", exc)
        return None


def _table(engine: Engine, final: dict[str, dict] | None = None):
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
        "intended vs achieved",
    ):
        table.add_column(header, justify="left" if header == "flock" else "right")
    for r in snapshot(engine, final):
        table.add_row(
            f"{r['flock']} ({r['operation']})",
            str(r["running"]),
            str(r["idle"]),
            str(r["error"]),
            str(r["successes"]),
            str(r["failures"]),
            f"{r['success_pct']:.2f}",
            f"{r['ops_s']:.1f}",
            ms_text(r["p50_ms"]),
            ms_text(r["p95_ms"]),
            schedule_text(r).removeprefix(", ") or "-",
        )
    return table


class LiveView:
    """Refreshes from a daemon thread so that a busy event loop cannot freeze the display."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.plain = bool(os.environ.get("CI")) or not sys.stdout.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

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
                if self._live is None:
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
        final = final_figures(self.engine)
        if self._live is not None:
            self._live.update(_table(self.engine, final))
            self._live.stop()
        elif self.plain:
            log.info("%s", status_line(self.engine, final))
