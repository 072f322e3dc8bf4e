"""What the web page shows, computed from the service's own objects.

Everything the page polls is computed at most once per `OVERVIEW_TTL_S` whatever the number
of pages open (one cached snapshot shared by all), except that a change of the flocks listed
recomputes at once, so a new flock shows on the next poll. Latency percentiles come from the
latest executions of at most `SAMPLE_MONKEYS` monkeys of a flock (each keeps its last 32), so
a 10,000-monkey flock costs what a 256-monkey one does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from library.artifacts import LIFECYCLE_OPERATIONS
from library.flock.businesses import main_operation
from library.service.web.series import WINDOWS, SeriesCache, bucket_seconds

if TYPE_CHECKING:
    from library.eventstore import EventStore
    from library.service.flock import ServiceFlock
    from library.service.manager import FlockManager
    from library.service.observe import Observer
    from library.triggers.service import TriggerService

OVERVIEW_TTL_S = 2.0
MONKEYS_TTL_S = 4.0
SAMPLE_MONKEYS = 256
RATE_SPAN_S = 10.0  # ops/s: the executions of about the last ten seconds
DAY_S = 86400.0
LATEST_RUNS = 10


def flock_state(flock: ServiceFlock, states: dict[str, int]) -> str:
    """The service's state, and ``failed`` for a started flock none of whose monkeys runs:
    each ended in ERROR or FINISHED (a standing flock's monkeys run until stopped, so one
    that finished has given up), a dead Dask shard's included."""
    state = flock.state()
    ended = states.get("ERROR", 0) + states.get("FINISHED", 0)
    if state == "running" and states and ended == sum(states.values()):
        return "failed"
    return state


def percentiles(values: list[float], qs: tuple[float, ...] = (0.5, 0.95)) -> list[float | None]:
    """The nearest-rank percentiles of `values` (None each when empty)."""
    if not values:
        return [None for _ in qs]
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] for q in qs]


class WebData:
    def __init__(
        self,
        manager: FlockManager,
        observer: Observer | None,
        triggers: TriggerService | None,
    ) -> None:
        self.manager = manager
        self.observer = observer
        self.triggers = triggers
        self._overview: tuple[float, tuple[Any, ...], dict[str, Any]] | None = None
        self._totals: dict[str, deque[tuple[float, int]]] = {}
        self._series: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._files = SeriesCache()
        self._monkeys: dict[str, tuple[float, ServiceFlock, list[tuple], dict[str, int]]] = {}
        if observer is not None:
            # The alerts' samples of each flock's counts, kept a day: the 1 h and 24 h
            # success figures read them (the page costs no extra sampling of its own).
            observer.alerts.keep_s = max(observer.alerts.keep_s, DAY_S)

    # -- the overview

    async def overview(self) -> dict[str, Any]:
        # A flock created, replaced, paused, resumed or started shows at the next poll.
        names = tuple(
            (name, id(f), f.paused, f.stopping, f.start_time is None)
            for name, f in sorted(self.manager.flocks.items())
        )
        now = time.monotonic()
        cached = self._overview
        if cached is not None and cached[1] == names and now - cached[0] < OVERVIEW_TTL_S:
            return cached[2]
        runs = None
        if self.triggers is not None:
            runs = await asyncio.to_thread(self._latest_runs)
        data = {
            "time": time.time(),
            "flocks": [self.flock_row(f) for f in list(self.manager.flocks.values())],
            "alerts": self.observer.alerts.as_dict()["firing"] if self.observer else [],
            "health": self.observer.health_now() if self.observer else {},
            "runs": runs,
        }
        data["flocks"].sort(key=lambda row: row["name"])
        self._overview = (now, names, data)
        return data

    def _latest_runs(self) -> dict[str, Any]:
        assert self.triggers is not None
        queue = self.triggers.queue
        return {
            "counts": queue.counts(),
            "latest": [r.to_dict() for r in queue.list(limit=LATEST_RUNS)],
        }

    def flock_row(self, flock: ServiceFlock) -> dict[str, Any]:
        states: dict[str, int] = {}
        for monkey in flock.users:
            state = flock.monkey_state(monkey)
            states[state] = states.get(state, 0) + 1
        summary = flock.summary()
        ok, failed = summary["success_count"], summary["failure_count"]
        row: dict[str, Any] = {
            "name": flock.name,
            "business": flock.config.business.type,
            "operation": main_operation(flock.config.business.type),
            "state": flock_state(flock, states),
            "source": flock.source,
            "created_by": flock.created_by,
            "start_time": summary["start_time"],
            "monkey_count": summary["monkey_count"],
            "monkeys": states,
            "success_count": ok,
            "failure_count": failed,
            "success_pct_1h": self._window_pct(flock.name, 3600.0, ok, failed),
            "success_pct_24h": self._window_pct(flock.name, DAY_S, ok, failed),
            "ops_per_s": self._rate(flock.name, ok + failed),
            "client_bound": bool(
                self.observer.health_now().get("client_bound") if self.observer else False
            ),
        }
        row["p50_ms"], row["p95_ms"] = self._latency(flock)
        return row

    def _window_pct(self, name: str, window: float, ok: int, failed: int) -> float | None:
        counts = None
        if self.observer is not None:
            counts = self.observer.alerts.window_counts(name, window, time.time())
        if counts is not None and sum(counts) > 0:
            ok, failed = counts
        elif counts is not None and self.observer is not None:
            # The flock ran no execution over the window: nothing to say.
            return None
        total = ok + failed
        return round(100.0 * ok / total, 2) if total else None

    def _rate(self, name: str, total: int) -> float | None:
        now = time.monotonic()
        series = self._totals.setdefault(name, deque(maxlen=64))
        if series and total < series[-1][1]:
            series.clear()  # replaced: its counts started again
        series.append((now, total))
        while len(series) > 2 and now - series[1][0] >= RATE_SPAN_S:
            series.popleft()
        for stale in [n for n in self._totals if n not in self.manager.flocks]:
            del self._totals[stale]
        first_t, first_n = series[0]
        if now - first_t < 0.5:
            return None
        return round((total - first_n) / (now - first_t), 2)

    @staticmethod
    def _latency(flock: ServiceFlock) -> tuple[float | None, float | None]:
        stats = list(getattr(flock, "stats", {}).values())
        step = max(1, len(stats) // SAMPLE_MONKEYS)
        values: list[float] = []
        for item in stats[::step]:
            values.extend(item.recent_ms)
        p50, p95 = percentiles(values)
        return (
            None if p50 is None else round(p50, 3),
            None if p95 is None else round(p95, 3),
        )

    # -- one flock

    async def flock(self, flock: ServiceFlock) -> dict[str, Any]:
        """A flock's overview row, from the shared snapshot (one computation for every page
        open, overview or flock)."""
        overview = await self.overview()
        for row in overview["flocks"]:
            if row["name"] == flock.name:
                return dict(row)
        return self.flock_row(flock)

    def monkeys(
        self, flock: ServiceFlock, state: str | None, limit: int, offset: int
    ) -> dict[str, Any]:
        """Its monkeys, those with failures first, with state and last error. The sorted
        list is kept MONKEYS_TTL_S per flock, shared by the pages that poll it."""
        now = time.monotonic()
        cached = self._monkeys.get(flock.name)
        if cached is None or cached[1] is not flock or now - cached[0] >= MONKEYS_TTL_S:
            rows = []
            counts: dict[str, int] = {}
            for name in flock.users:
                monkey_state = flock.monkey_state(name)
                counts[monkey_state] = counts.get(monkey_state, 0) + 1
                stats = flock.stats.get(name)
                ok, failed = (stats.successes, stats.failures) if stats else (0, 0)
                rows.append((-failed, name, monkey_state, ok))
            rows.sort()
            for stale in [n for n in self._monkeys if n not in self.manager.flocks]:
                del self._monkeys[stale]
            cached = self._monkeys[flock.name] = (now, flock, rows, counts)
        _, _, rows, counts = cached
        if state:
            rows = [row for row in rows if row[2] == state]
        page = rows[offset : offset + limit]
        return {
            "total": len(rows),
            "states": counts,
            "monkeys": [
                {
                    "name": name,
                    "state": monkey_state,
                    "success_count": ok,
                    "failure_count": -neg_failed,
                    "last_error": last_error(flock, name) if neg_failed else None,
                }
                for neg_failed, name, monkey_state, ok in page
            ],
        }

    async def series(self, store: EventStore, flock: ServiceFlock, window: str) -> dict[str, Any]:
        """Rate, failures and latency percentiles of a flock over `window` from the
        partitioned events (what reached disk: up to one flush interval behind); computed
        at most once per half bucket of the window (at least 5 s)."""
        seconds = WINDOWS[window]
        key = (flock.name, window)
        now = time.monotonic()
        cached = self._series.get(key)
        if cached is not None and now - cached[0] < max(5.0, bucket_seconds(seconds) / 2):
            return cached[1]
        data = await asyncio.to_thread(
            self._files.series,
            store,
            flock.name,
            main_operation(flock.config.business.type),
            {str(op) for op in LIFECYCLE_OPERATIONS},
            seconds,
            time.time(),
        )
        data["window"] = window
        if len(self._series) > 64:
            self._series.clear()
        self._series[key] = (now, data)
        return data


def last_error(flock: ServiceFlock, name: str) -> str | None:
    log = flock.logs.get(name)
    if log is None:
        return None
    return log.last("ERROR")
