"""Alerts: a flock's success rate over a window below its rule's threshold.

The rate is mobu's: business executions that succeeded over those that ended (the flock
summary's success and failure counts), taken as the difference between two samples of the
counts `window` apart, so a flock that has run well for a month still alerts within one
window of breaking. One message when a (rule, flock) breaches, none while it stays in breach
(evaluations do not repeat it), one when it recovers. A window with no execution (a paused
flock, an idle one) leaves the state as it is. Messages go to a Slack-compatible webhook
(``{"text", "blocks"}``); an undelivered one is retried at the next evaluations.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from library.errors import one_line
from library.service.settings import AlertRule

log = logging.getLogger(__name__)
HISTORY = 500  # alert messages kept for GET /alerts
MAX_ATTEMPTS = 5


def rule_name(rule: AlertRule, index: int) -> str:
    return getattr(rule, "name", None) or f"rule{index}"


def human(seconds: float) -> str:
    """3600 -> '1h', 90 -> '1m30s', 86400 -> '24h'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


@dataclass
class Breach:
    rule: str
    flock: str
    since: float
    success_pct: float


@dataclass
class Message:
    kind: str  # "firing" or "recovered"
    rule: str
    flock: str
    time: float
    success_pct: float
    successes: int
    failures: int
    window_s: float
    threshold_pct: float
    text: str
    webhook: str | None
    delivered: bool = False
    attempts: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "flock": self.flock,
            "time": _iso(self.time),
            "success_pct": self.success_pct,
            "successes": self.successes,
            "failures": self.failures,
            "window": human(self.window_s),
            "threshold_pct": self.threshold_pct,
            "text": self.text,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "error": self.error,
        }


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")


@dataclass
class Alerts:
    rules: list[AlertRule]
    default_webhook: str | None = None
    # Counts are kept at least this long (the daily report's last 24 hours).
    keep_s: float = 0.0
    samples: dict[str, deque[tuple[float, int, int]]] = field(default_factory=dict)
    firing: dict[tuple[str, str], Breach] = field(default_factory=dict)
    history: deque[Message] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _outbox: list[Message] = field(default_factory=list)

    @property
    def longest_window(self) -> float:
        return max([r.window for r in self.rules] + [self.keep_s])

    @property
    def resolution(self) -> float:
        """Samples closer than this are merged: a window is off by at most this much, and
        a day of samples is a few thousand, not one per evaluation."""
        spans = [r.window for r in self.rules] + ([self.keep_s] if self.keep_s else [])
        return min(spans) / 120 if spans else 0.0

    def sample(self, summaries: list[dict[str, Any]], now: float) -> None:
        """Note each flock's counts now; samples older than the longest window (and one
        before it) are dropped, so memory stays bounded."""
        present = set()
        for summary in summaries:
            name = summary["name"]
            present.add(name)
            series = self.samples.setdefault(name, deque())
            ok, failed = int(summary["success_count"]), int(summary["failure_count"])
            if series and (ok < series[-1][1] or failed < series[-1][2]):
                series.clear()  # the flock was replaced: its counts started again
            if not series:
                # A flock's counts start at zero: failures it had before its first sample
                # (a flock that fails at once) are in its first window, not lost in it.
                series.append((now, 0, 0))
            if len(series) >= 2 and now - series[-2][0] < self.resolution:
                series[-1] = (now, ok, failed)  # close to the one before: replace, not add
            else:
                series.append((now, ok, failed))
            horizon = now - self.longest_window
            while len(series) > 2 and series[1][0] <= horizon:
                series.popleft()
        for name in list(self.samples):
            if name not in present:
                del self.samples[name]
                for key in [k for k in self.firing if k[1] == name]:
                    del self.firing[key]

    def window_counts(self, flock: str, window: float, now: float) -> tuple[int, int] | None:
        """(successes, failures) of the flock over the last `window` seconds, from the
        latest sample at or before its start (the oldest there is, early on)."""
        series = self.samples.get(flock)
        if not series or len(series) < 2:
            return None
        start = now - window
        base = series[0]
        for item in series:
            if item[0] <= start:
                base = item
            else:
                break
        last = series[-1]
        return last[1] - base[1], last[2] - base[2]

    def evaluate(self, now: float) -> list[Message]:
        """New firing and recovery messages (also queued for the webhook)."""
        out = []
        for index, rule in enumerate(self.rules):
            name = rule_name(rule, index)
            for flock in sorted(self.samples):
                if not fnmatch.fnmatchcase(flock, rule.flocks):
                    continue
                counts = self.window_counts(flock, rule.window, now)
                if counts is None or sum(counts) == 0:
                    continue
                ok, failed = counts
                pct = round(100.0 * ok / (ok + failed), 3)
                key = (name, flock)
                breach = self.firing.get(key)
                if pct < rule.min_success_pct and breach is None:
                    self.firing[key] = Breach(name, flock, now, pct)
                    out.append(self._message("firing", rule, name, flock, now, pct, ok, failed))
                elif pct >= rule.min_success_pct and breach is not None:
                    del self.firing[key]
                    message = self._message("recovered", rule, name, flock, now, pct, ok, failed)
                    message.text += f" (after {human(now - breach.since)} in breach)"
                    out.append(message)
        for message in out:
            self.history.append(message)
            if message.webhook:
                self._outbox.append(message)
        return out

    def _message(
        self,
        kind: str,
        rule: AlertRule,
        name: str,
        flock: str,
        now: float,
        pct: float,
        ok: int,
        failed: int,
    ) -> Message:
        window = human(rule.window)
        if kind == "firing":
            text = (
                f":rotating_light: Flock *{flock}*: {pct:.2f}% success over the last {window}, "
                f"below {rule.min_success_pct:g}% ({failed} failures, {ok} successes; "
                f"alert {name})"
            )
        else:
            text = (
                f":white_check_mark: Flock *{flock}* recovered: {pct:.2f}% success over the "
                f"last {window}, at or above {rule.min_success_pct:g}% (alert {name})"
            )
        return Message(
            kind,
            name,
            flock,
            now,
            pct,
            ok,
            failed,
            rule.window,
            rule.min_success_pct,
            text,
            rule.webhook_url or self.default_webhook,
        )

    async def deliver(self, post: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
        """Post the queued messages in order; one that fails stays queued (up to
        MAX_ATTEMPTS), and those after it wait, so recoveries never overtake their alert."""
        while self._outbox:
            message = self._outbox[0]
            message.attempts += 1
            try:
                await post(message.webhook or "", slack_payload(message.text))
            except Exception as exc:  # noqa: BLE001 - a webhook down must not stop the service
                message.error = one_line(str(exc) or type(exc).__name__, 200)
                log.warning(
                    "alert %s/%s not delivered: %s", message.rule, message.flock, message.error
                )
                if message.attempts >= MAX_ATTEMPTS:
                    self._outbox.pop(0)
                    continue
                return
            message.delivered, message.error = True, None
            self._outbox.pop(0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "firing": [
                {
                    "rule": b.rule,
                    "flock": b.flock,
                    "since": _iso(b.since),
                    "success_pct": b.success_pct,
                }
                for b in self.firing.values()
            ],
            "rules": [
                {
                    "name": rule_name(rule, i),
                    "flocks": rule.flocks,
                    "min_success_pct": rule.min_success_pct,
                    "window": human(rule.window),
                    "webhook": bool(rule.webhook_url or self.default_webhook),
                }
                for i, rule in enumerate(self.rules)
            ],
            "history": [m.as_dict() for m in reversed(self.history)],
        }


def slack_payload(text: str) -> dict[str, Any]:
    """A Slack incoming-webhook body: the text, and the same as one mrkdwn section block."""
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
