"""From an event to queued runs, the same way for ``trigger fire``, the service's
``/events`` and its GitHub webhook: remember the event (a second delivery is a duplicate),
match the rules, queue the runs (each once: its dedupe key), wake the executor."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from library.queue.store import QueuedRun, QueueStore
from library.triggers.events import Event
from library.triggers.rules import RuleSet, RunRequest

log = logging.getLogger(__name__)


@dataclass
class Accepted:
    event_id: str
    event_type: str
    duplicate: bool
    runs: list[tuple[QueuedRun, bool]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.event_type,
            "duplicate": self.duplicate,
            "runs": [
                {
                    "id": run.id,
                    "project": run.project,
                    "step": run.step,
                    "state": run.state,
                    "new": new,
                }
                for run, new in self.runs
            ],
        }


class Dispatcher:
    def __init__(
        self,
        rules: RuleSet | None,
        store: QueueStore,
        lane: str,
        wake: Callable[[], None] | None = None,
        max_attempts: int = 2,
    ) -> None:
        self.rules = rules
        self.store = store
        self.lane = lane
        self.wake = wake
        self.max_attempts = max_attempts

    def match(self, event: Event) -> list[RunRequest]:
        return self.rules.match(event) if self.rules is not None else []

    def accept(self, event: Event, source: str) -> Accepted:
        """Queue what EVENT asks for. The rules are matched before anything is stored, so a
        bad event (a field a rule needs is missing) changes nothing."""
        requests = self.match(event)
        new = self.store.record_event(event.id, event.type, event.fields, source)
        runs = self.store.enqueue(requests, self.lane, max_attempts=self.max_attempts)
        accepted = Accepted(event.id, event.type, not new, runs)
        queued = sum(1 for _, created in runs if created)
        log.info(
            "event %s (%s) from %s: %s, %d run(s) queued",
            event.id,
            event.type,
            source,
            "duplicate" if not new else "new",
            queued,
        )
        if queued and self.wake is not None:
            self.wake()
        return accepted
