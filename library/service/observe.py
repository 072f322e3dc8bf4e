"""What the service says about itself: metrics, windowed summaries, alerts, daily reports,
and the upkeep of its events (compaction, retention).

`Observer` plugs into the service's seams: it taps the runtime's recorder (the metrics'
tally), reads the flock manager's summaries, runs its background tasks on the service's loop
(health sampling, retention, alert evaluation, the report schedule) and adds its routes:

- ``GET /metrics``: Prometheus text (`library.service.metrics`)
- ``GET {prefix}/stats?window=1h|24h|start`` or ``?since=ISO&until=ISO``: per-(flock,
  operation) figures over the events of that time (`library.stats`), from the store
- ``GET {prefix}/alerts``: rules, what is firing, the messages sent
- ``GET {prefix}/report``: the daily report's text now, the next post time, past posts;
  ``POST {prefix}/report`` (admin) posts it now
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from library.eventstore import EventStore, parse_time
from library.flock.health import HealthSampler, Thresholds
from library.flock.options import Duration
from library.memory import malloc_trim
from library.redact import register_secret
from library.service.alerts import Alerts, slack_payload
from library.service.metrics import CONTENT_TYPE, EventTally, ServiceCollector, render
from library.service.reports import ReportLog, WebhookRefused, daily_text, next_post
from library.stats import table_stats

if TYPE_CHECKING:
    import aiohttp

    from library.service.auth import Authenticator
    from library.service.manager import FlockManager
    from library.service.runtime import Runtime
    from library.service.settings import ServiceSettings

log = logging.getLogger(__name__)
HEALTH_ROWS = 120  # seconds of engine health kept in memory (client-bound is over the last 60)
BOUND_WINDOW = 60
WINDOWS = {"1h": 3600.0, "24h": 86400.0}
STATS_TTL_S = 10.0  # a windowed summary is computed at most this often per window
POST_TIMEOUT_S = 10.0
TRIM_EVERY_S = 30.0
# Above this many events in a window its percentiles come from a uniform sample of this
# many (~40 bytes each read): a day of 2,000 monkeys at 1/s is 170 million.
MAX_WINDOW_ROWS = 5_000_000


class Observer:
    def __init__(
        self,
        settings: ServiceSettings,
        manager: FlockManager,
        runtime: Runtime,
        auth: Authenticator | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.manager = manager
        self.runtime = runtime
        self.store = EventStore(settings.events_path)
        self.tally = EventTally()
        taps = getattr(runtime.recorder, "taps", None)
        if taps is not None:
            taps.append(self.tally.tap)
        self.health = HealthSampler(lambda: runtime.shared.monkeys)
        self.thresholds = Thresholds()
        report = settings.report
        for url in [report.webhook_url, *(r.webhook_url for r in settings.alerts)]:
            register_secret(url)
        self.alerts = Alerts(
            settings.alerts,
            default_webhook=report.webhook_url,
            keep_s=86400.0 if report.enabled else 0.0,
        )
        retry = report.retry
        self.reports = ReportLog(retry.attempts, retry.delay, retry.within)
        self.started = time.time()
        self.store_size: tuple[int, int] = (0, 0)
        self.last_retention: dict[str, Any] | None = None
        self._stats_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stats_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.health.run(), name="health"),
            asyncio.create_task(self._upkeep_loop(), name="events-upkeep"),
            asyncio.create_task(self._alert_loop(), name="alerts"),
            asyncio.create_task(self._trim_loop(), name="heap-trim"),
        ]
        if self.settings.report.enabled:
            self._tasks.append(asyncio.create_task(self._report_loop(), name="daily-report"))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.reports.aclose()
        if self._session is not None:
            await self._session.close()

    # -- what the parts read

    def flock_data(self) -> list[dict[str, Any]]:
        out = []
        for name in self.manager.list_flocks():
            flock = self.manager.flocks.get(name)
            if flock is None:
                continue
            summary = flock.summary()
            states: dict[str, int] = {}
            for monkey in flock.users:
                state = flock.monkey_state(monkey)
                states[state] = states.get(state, 0) + 1
            summary["states"] = states
            out.append(summary)
        return out

    def tallies(self) -> list[EventTally]:
        self.tally.catch_up(self.runtime.recorder)
        extra = []
        for flock in list(self.manager.flocks.values()):
            shard_tally = getattr(flock, "tally", None)
            if shard_tally is not None:
                extra.append(shard_tally)
        if not extra:
            return [self.tally]
        # One series per label set: a Dask flock's events are tallied in its shards, and its
        # ShardDied events here.
        merged = EventTally()
        for tally in (self.tally, *extra):
            merged.add(tally.snapshot())
        return [merged]

    def shard_health(self) -> list[tuple[str, int, tuple]]:
        out = []
        for name, flock in sorted(self.manager.flocks.items()):
            for shard, row in sorted(getattr(flock, "shard_health", {}).items()):
                out.append((name, shard, row))
        return out

    def health_now(self) -> dict[str, Any]:
        rows = self.health.rows
        if len(rows) > HEALTH_ROWS:
            del rows[: len(rows) - HEALTH_ROWS]
        if not rows:
            return {}
        _, lag_max, lag_p99, cpu, rss, active, _ = rows[-1]
        recent = rows[-BOUND_WINDOW:]
        t = self.thresholds
        lagged = sum(1 for r in recent if r[2] > t.lag_p99_ms)
        busy = sum(1 for r in recent if r[3] >= t.cpu_percent)
        limit = max(1, t.fraction * len(recent))
        return {
            "lag_max_ms": lag_max,
            "lag_p99_ms": lag_p99,
            "cpu_percent": cpu,
            "rss_bytes": rss,
            "active_monkeys": active,
            "client_bound": lagged > limit or busy > limit,
        }

    def metrics_text(self) -> bytes:
        collector = ServiceCollector(
            self.tallies,
            self.flock_data,
            self.health_now,
            lambda: self.store_size,
            lambda: sorted(self.alerts.firing),
            self.shard_health,
        )
        return render(collector)

    def summaries(self) -> list[dict[str, Any]]:
        return self.manager.summaries()

    def environment_url(self) -> str:
        platform = self.runtime.shared.endpoints.get("platform") or {}
        return platform.get("hub_url") or platform.get("tap_url") or "(no platform)"

    def report_text(self) -> str:
        now = time.time()
        last_day = {}
        for summary in self.summaries():
            counts = self.alerts.window_counts(summary["name"], 86400.0, now)
            if counts is not None:
                last_day[summary["name"]] = counts
        return daily_text(self.summaries(), self.environment_url(), last_day)

    # -- windowed summaries

    def window_range(
        self, window: str | None, since: str | None, until: str | None
    ) -> tuple[int, int | None, str]:
        now_us = int(time.time() * 1e6)
        if since is not None or until is not None:
            since_us = parse_time(since, "since") if since else 0
            until_us = parse_time(until, "until") if until else None
            return since_us, until_us, f"{since or 'beginning'}..{until or 'now'}"
        window = window or "1h"
        if window == "start":
            return int(self.started * 1e6), None, "start"
        if window in WINDOWS:
            return now_us - int(WINDOWS[window] * 1e6), None, window
        from pydantic import TypeAdapter

        seconds = TypeAdapter(Duration).validate_python(window)
        return now_us - int(seconds * 1e6), None, window

    async def window_stats(
        self, window: str | None, since: str | None, until: str | None
    ) -> dict[str, Any]:
        since_us, until_us, label = self.window_range(window, since, until)
        # One computation at a time: callers asking meanwhile get its answer, so a dashboard
        # polling a long window does not start a read per poll.
        async with self._stats_lock:
            cached = self._stats_cache.get(label)
            if cached is not None and time.monotonic() < cached[0]:
                return cached[1]
            began = time.monotonic()
            result = await asyncio.to_thread(compute_window_stats, self.store, since_us, until_us)
            result["window"] = label
            took = time.monotonic() - began
            result["computed_in_s"] = round(took, 3)
            if len(self._stats_cache) > 16:
                self._stats_cache.clear()
            # Kept 10 s, or ten times what it took: a long window is not recomputed back to back.
            self._stats_cache[label] = (time.monotonic() + max(STATS_TTL_S, 10 * took), result)
            return result

    # -- background tasks

    async def _upkeep_loop(self) -> None:
        retention = self.settings.retention
        every = getattr(retention, "check_every", 60.0)
        while True:
            try:
                self.last_retention = await asyncio.to_thread(self.upkeep)
            except Exception as exc:  # noqa: BLE001 - upkeep failing must not stop the service
                log.warning("events upkeep failed: %s", exc)
            await asyncio.sleep(every)

    def upkeep(self, now: float | None = None) -> dict[str, Any]:
        """Compact finished hours, then apply the retention; returns what was done."""
        now = time.time() if now is None else now
        retention = self.settings.retention
        # A partition is final once its hour ended and two flushes went by.
        settled_us = int((now - 2 * self.settings.flush_interval - 1) * 1e6)
        merged = self.store.compact(settled_us)
        result = self.store.enforce(retention.max_age, retention.max_bytes, now)
        self.store_size = (result.kept_files, result.kept_bytes)
        out = {"time": _iso(now), "compacted": merged, **result.as_dict()}
        if result.removed_files:
            log.info(
                "events retention: removed %d files (%d bytes); kept %d files (%d bytes)",
                result.removed_files,
                result.removed_bytes,
                result.kept_files,
                result.kept_bytes,
            )
        return out

    async def _trim_loop(self) -> None:
        """Give the C heap's free memory back to the system every TRIM_EVERY_S.

        Every flush drops buffers made with the C heap (the recorder's columns, grown by
        realloc, and the numpy and Arrow buffers of the write); glibc keeps what they freed
        in its arenas, fragmented, so a service flushing every 10 s for months grows without
        leaking (measured: +3.4 MiB/min over a 10-minute soak of 2,000 HTTP monkeys without
        this, flat with it). `malloc_trim(0)` returns the free pages of every arena.
        """
        trim = malloc_trim()
        if trim is None:
            return
        while True:
            await asyncio.sleep(TRIM_EVERY_S)
            await asyncio.to_thread(trim, 0)

    async def _alert_loop(self) -> None:
        every = min(
            (getattr(r, "evaluate_every", 10.0) for r in self.settings.alerts), default=10.0
        )
        if not self.settings.alerts and self.settings.report.enabled:
            every = 60.0  # only the report's 24 h counts to keep
        while True:
            await asyncio.sleep(every)
            self.health_now()  # trims the sampler's rows even when nobody scrapes
            try:
                await self.evaluate()
            except Exception as exc:  # noqa: BLE001
                log.warning("alert evaluation failed: %s", exc)

    async def evaluate(self) -> list[dict[str, Any]]:
        now = time.time()
        self.alerts.sample(self.summaries(), now)
        messages = self.alerts.evaluate(now)
        for message in messages:
            log.warning("alert %s: %s", message.kind, message.text)
        await self.alerts.deliver(self.post)
        return [m.as_dict() for m in messages]

    async def _report_loop(self) -> None:
        at = self.settings.report.time
        target = next_post(dt.datetime.now(dt.UTC), at)
        while True:
            delay = (target - dt.datetime.now(dt.UTC)).total_seconds()
            if delay > 0:
                # Woken at most hourly: a sleep measured on the monotonic clock drifts from
                # the wall clock, and waking a little early must not post twice.
                await asyncio.sleep(min(delay, 3600.0))
                continue
            await self.post_report("schedule")
            target = next_post(target, at)

    def next_report(self) -> str | None:
        if not self.settings.report.enabled:
            return None
        return next_post(dt.datetime.now(dt.UTC), self.settings.report.time).isoformat()

    async def post_report(self, why: str) -> dict[str, Any]:
        text = self.report_text()
        url = self.settings.report.webhook_url
        if not url:
            return self.reports.add(text, False, "no webhook_url in service.report", why)
        payload = slack_payload(text)
        # Posted now, and again with backoff while it fails for a reason that may pass.
        return await self.reports.post(text, why, lambda: self.post(url, payload))

    async def post(self, url: str, payload: dict[str, Any]) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S)
            )
        async with self._session.post(url, json=payload) as response:
            if response.status >= 300:
                body = (await response.text())[:200]
                raise WebhookRefused(response.status, body)

    # -- routes

    def router(self) -> APIRouter:
        from library.service.app import FormattedJSONResponse

        prefix = self.settings.prefix
        router = APIRouter()
        observer = self

        @router.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(observer.metrics_text(), media_type=CONTENT_TYPE)

        @router.get(f"{prefix}/stats", summary="Figures per flock and operation over a window")
        async def stats(
            window: str | None = Query(None, description="1h, 24h, start, or a duration"),
            since: str | None = Query(None, description="ISO time or epoch seconds"),
            until: str | None = Query(None, description="ISO time or epoch seconds"),
        ) -> Response:
            try:
                result = await observer.window_stats(window, since, until)
            except ValueError as exc:
                message = str(exc).splitlines()[0]
                detail = [{"loc": ["query", "window"], "msg": message, "type": "value_error"}]
                return JSONResponse({"detail": detail}, status_code=422)
            return FormattedJSONResponse(result)

        @router.get(f"{prefix}/alerts", summary="Alert rules, alerts firing, messages sent")
        async def alerts() -> Response:
            return FormattedJSONResponse(observer.alerts.as_dict())

        @router.get(f"{prefix}/report", summary="The daily report (mobu's text) and its posts")
        async def report() -> Response:
            return FormattedJSONResponse(
                {
                    "text": observer.report_text(),
                    "enabled": observer.settings.report.enabled,
                    "time": observer.settings.report.time,
                    "next_post": observer.next_report(),
                    "history": list(reversed(observer.reports.history)),
                    "events": {
                        "dir": str(observer.store.root),
                        "files": observer.store_size[0],
                        "bytes": observer.store_size[1],
                        "last_upkeep": observer.last_retention,
                    },
                }
            )

        @router.post(f"{prefix}/report", summary="Post the daily report now (admin)")
        async def post_report(request: Request) -> Response:
            who = request.scope["state"]["identity"]
            if observer.auth is None:
                return Response(status_code=403)
            observer.auth.check_admin(who, "post the report")
            return FormattedJSONResponse(await observer.post_report(f"asked by {who.name}"))

        return router


def compute_window_stats(
    store: EventStore, since_us: int, until_us: int | None, max_rows: int = MAX_WINDOW_ROWS
) -> dict[str, Any]:
    """Figures of the events that started in [since, until): `library.stats` over them.

    Above `max_rows` events the percentiles are those of a uniform sample of `max_rows`
    (every k-th event), so that a day of a heavy flock does not need gigabytes; counts and
    success % stay exact, the schedule rates (which count every event) are left out, and the
    answer says `sampled`.
    """
    columns = ["start_us", "duration_us", "lag_us", "flock", "operation", "success", "monkey"]
    total = store.count_rows(since_us, until_us)
    sampled = None
    if total <= max_rows:
        table = store.read(since_us, until_us, columns)
        operations = table_stats(table)
    else:
        stride = -(-total // max_rows)
        table, exact = store.read_sample(since_us, until_us, columns, stride)
        operations = table_stats(table)
        for op in operations:
            count, failures = exact.get((op.flock, op.operation), (op.count, op.failures))
            op.count, op.failures = count, failures
            op.success_pct = round(100.0 * (count - failures) / count, 3)
            op.intended_per_s = op.achieved_per_s = op.achieved_pct = None
            op.behind_schedule = None
        sampled = {"every": stride, "rows": table.num_rows}
    flocks: dict[str, dict[str, int]] = {}
    for op in operations:
        if op.lifecycle and op.operation != "monkey_error":
            continue
        entry = flocks.setdefault(op.flock, {"count": 0, "failures": 0})
        entry["count"] += op.count
        entry["failures"] += op.failures
    del table
    return {
        "since": _iso(since_us / 1e6),
        "until": _iso(until_us / 1e6) if until_us is not None else None,
        "sampled": sampled,
        "events": sum(op.count for op in operations),
        "operations": [op.as_dict() for op in operations if not op.lifecycle],
        "lifecycle": [op.as_dict() for op in operations if op.lifecycle],
        "flocks": {
            name: {
                **entry,
                "success_pct": round(
                    100.0 * (entry["count"] - entry["failures"]) / entry["count"], 3
                )
                if entry["count"]
                else None,
            }
            for name, entry in sorted(flocks.items())
        },
    }


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")
