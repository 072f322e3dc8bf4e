"""mobu's daily report: one Slack message saying the service is alive and how its flocks do.

The text is mobu's (``mobu/status.py``): "Currently running N flocks against URL:" and one
line per flock with its monkeys, start date, failures and success % since it started; bosun
adds ", paused" to a paused flock's line and the last 24 hours' success % when the flock has
had executions in that time. Posted every day at the schedule's time (UTC) to its webhook.

A post that fails for a reason that may pass (no answer, a timeout, 429, 5xx) is posted again
with backoff (``report.retry``: after 30 s, 60 s, 120 s... up to 5 posts within 15 minutes),
in the background and cancelled when the service stops; one refused for good (another 4xx,
a malformed URL) is not. A report is posted until one post succeeds, never after: a post the
webhook took but did not answer in time is the one case that can reach it twice. Each
report's entry in ``GET /report`` shows its state (``delivered``, ``retrying`` with the next
attempt's time, ``failed``, ``cancelled``), every failed attempt and the last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from library.errors import one_line

log = logging.getLogger(__name__)
Send = Callable[[], Awaitable[None]]


def success_pct(successes: int, failures: int) -> float:
    """mobu's rule: 100 with nothing run, never shown as 100 while anything failed."""
    total = successes + failures
    if total == 0:
        return 100.0
    pct = successes / total * 100
    if 99.995 < pct < 100:
        pct = 99.99
    return pct


def daily_text(
    summaries: list[dict[str, Any]],
    environment_url: str,
    last_day: dict[str, tuple[int, int]] | None = None,
) -> str:
    count = len(summaries)
    flocks = "flock" if count == 1 else "flocks"
    text = f"Currently running {count} {flocks} against {environment_url}:\n"
    for summary in summaries:
        start = summary.get("start_time")
        if start:
            started = "started " + dt.datetime.fromisoformat(start).strftime("%Y-%m-%d")
        else:
            started = "(not started)"
        monkeys = summary["monkey_count"]
        failures = summary["failure_count"]
        pct = success_pct(summary["success_count"], failures)
        line = (
            f"• *{summary['name']}*: {monkeys} {'monkey' if monkeys == 1 else 'monkeys'}"
            f" {started} with {failures} {'failure' if failures == 1 else 'failures'}"
            f" ({pct:.2f}% success)"
        )
        day = (last_day or {}).get(summary["name"])
        if day and sum(day):
            line += f", {success_pct(*day):.2f}% in the last 24 h"
        if summary.get("paused"):
            line += ", paused"
        text += line + "\n"
    return text


def next_post(now: dt.datetime, at: str) -> dt.datetime:
    """The next time of day `at` (HH:MM, UTC) strictly after `now`."""
    hour, minute = (int(x) for x in at.split(":"))
    candidate = now.astimezone(dt.UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= now:
        candidate += dt.timedelta(days=1)
    return candidate


class WebhookRefused(RuntimeError):
    """The webhook answered, with a status that is not a success."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"webhook answered {status}: {body}")
        self.status = status


def retryable(exc: BaseException) -> bool:
    """Whether posting again may succeed: no answer (refused, reset, timed out), 408, 429
    and 5xx may pass; another 4xx or a malformed URL (a ValueError) will not."""
    if isinstance(exc, WebhookRefused):
        return exc.status in (408, 429) or exc.status >= 500
    return not isinstance(exc, ValueError)


def _iso(at: float | None = None) -> str:
    moment = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.isoformat(timespec="seconds")


def _error(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 200)


class ReportLog:
    """Reports posted, being retried, or that failed to post, for GET /report; owns the
    background retries (cancelled by `aclose`)."""

    def __init__(self, attempts: int = 5, delay_s: float = 30.0, within_s: float = 900.0) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=60)
        self.attempts = attempts
        self.delay_s = delay_s
        self.within_s = within_s
        self._retries: dict[asyncio.Task[None], dict[str, Any]] = {}

    def add(self, text: str, delivered: bool, error: str | None, why: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": _iso(),
            "why": why,
            "delivered": delivered,
            "state": "delivered" if delivered else "failed",
            "error": error,
            "attempts": 0,
            "failures": [],
            "next_attempt": None,
            "text": text,
        }
        self.history.append(entry)
        return entry

    async def post(self, text: str, why: str, send: Send) -> dict[str, Any]:
        """Post once now; on a failure that may pass, go on posting in the background. The
        entry returned is the report's, updated in place as the retries go."""
        entry = self.add(text, False, None, why)
        began = time.monotonic()
        try:
            delay = await self._attempt(entry, send, began)
        except asyncio.CancelledError:
            self._cancelled(entry)
            raise
        if delay is not None:
            task = asyncio.create_task(self._retry(entry, send, began, delay))
            self._retries[task] = entry
            task.add_done_callback(lambda done: self._retries.pop(done, None))
        return entry

    async def _attempt(self, entry: dict[str, Any], send: Send, began: float) -> float | None:
        """One post; returns the wait before the next, or None (delivered, or given up)."""
        entry["attempts"] += 1
        entry.update(state="posting", next_attempt=None)
        try:
            await send()
        except Exception as exc:  # noqa: BLE001 - every failure is shown in GET /report
            error = _error(exc)
            entry["error"] = error
            entry["failures"].append({"time": _iso(), "error": error})
            attempts = entry["attempts"]
            delay = self.delay_s * 2 ** (attempts - 1)
            if not retryable(exc):
                why_not = " (not retried: the webhook refused it)"
            elif attempts >= self.attempts:
                why_not = f" (given up after {attempts} attempts)"
            elif time.monotonic() + delay - began > self.within_s:
                why_not = f" (given up: no attempt after {self.within_s:.0f} s)"
            else:
                why_not = ""
            if why_not:
                entry["state"] = "failed"
            else:
                entry.update(state="retrying", next_attempt=_iso(time.time() + delay))
            log.warning(
                "daily report (%s) not delivered, attempt %d: %s%s",
                entry["why"],
                attempts,
                error,
                why_not or f" (again in {delay:.0f} s)",
            )
            return None if why_not else delay
        entry.update(delivered=True, state="delivered", delivered_at=_iso())
        if entry["attempts"] > 1:
            log.info("daily report (%s) delivered at attempt %d", entry["why"], entry["attempts"])
        return None

    async def _retry(
        self, entry: dict[str, Any], send: Send, began: float, delay: float | None
    ) -> None:
        while delay is not None:
            await asyncio.sleep(delay)
            delay = await self._attempt(entry, send, began)

    def _cancelled(self, entry: dict[str, Any]) -> None:
        if entry["state"] in ("retrying", "posting"):
            entry.update(state="cancelled", next_attempt=None)
            log.warning(
                "daily report (%s) not delivered: the service stopped after %d attempt(s)",
                entry["why"],
                entry["attempts"],
            )

    async def aclose(self) -> None:
        """Cancel the retries under way (the service is stopping)."""
        retries = list(self._retries.items())
        for task, _ in retries:
            task.cancel()
        for task, entry in retries:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._cancelled(entry)
