"""mobu's daily report: one Slack message saying the service is alive and how its flocks do.

The text is mobu's (``mobu/status.py``): "Currently running N flocks against URL:" and one
line per flock with its monkeys, start date, failures and success % since it started; bosun
adds ", paused" to a paused flock's line and the last 24 hours' success % when the flock has
had executions in that time. Posted every day at the schedule's time (UTC) to its webhook.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from typing import Any


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


class ReportLog:
    """Reports posted (or that failed to post), for GET /report."""

    def __init__(self) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=60)

    def add(self, text: str, delivered: bool, error: str | None, why: str) -> dict[str, Any]:
        entry = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "why": why,
            "delivered": delivered,
            "error": error,
            "text": text,
        }
        self.history.append(entry)
        return entry
