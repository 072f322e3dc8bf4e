"""`/summary`'s ``ci_manager``: the service's run queue in the shape of mobu's CI manager.

mobu's ``ci_manager`` summarises its GitHub CI app (``models/ci_manager.py``): its workers,
each with the user it works as, how many jobs it has processed since mobu started and the job
under way (``{"commit_url"}``), and how many jobs wait for a free worker. bosun's equivalent is
the queue of runs that events and webhooks ask for (library/queue, library/triggers): its
workers are the executor's slots (``triggers.concurrency``), a slot's job the run it holds,
and the queued runs of the service's lane are the ones waiting.

A slot has no bot user of its own (a run is ``ci/run PROJECT STEP`` in a process of the
service's; its bot users are its project's), so a worker's ``user`` names the slot. A job
adds to mobu's ``commit_url`` (null when the event named no repository and commit: a deploy
event, say) what the queue knows of the run: its id, rule, event, project and step.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from library.queue.store import QUEUED, QueuedRun, RunNotFound
from library.triggers.github import DEFAULT_API_URL

if TYPE_CHECKING:
    from library.triggers.service import TriggerService


class CiUser(BaseModel):
    """mobu's User; here the slot's name."""

    username: str
    uidnumber: int | None = None
    gidnumber: int | None = None


class CiJobSummary(BaseModel):
    commit_url: str | None = Field(..., title="The commit the run is for, when the event named one")
    run_id: int = Field(..., title="bosun: the run's id in the queue (GET /runs/{id})")
    rule: str = Field(..., title="bosun: the trigger rule that queued it")
    event_id: str
    event_type: str
    project: str
    step: str
    attempt: int
    started: str | None


class CiWorkerSummary(BaseModel):
    user: CiUser
    num_processed: int = Field(..., title="Runs this slot has ended since the service started")
    current_job: CiJobSummary | None


class CiManagerSummary(BaseModel):
    workers: list[CiWorkerSummary]
    num_queued: int = Field(..., title="Runs waiting for a free slot")


def web_url(api_url: str) -> str:
    """GitHub's web address for its API's: github.com for api.github.com, the host of a
    GitHub Enterprise Server's ``/api/v3``, else the API's own scheme and host."""
    if api_url.rstrip("/") == DEFAULT_API_URL:
        return "https://github.com"
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}"


def commit_url(run: QueuedRun, web: str) -> str | None:
    repository, sha = run.data.get("repository"), run.data.get("git_sha")
    if not isinstance(repository, str) or not isinstance(sha, str):
        return None
    return f"{web}/{repository}/commit/{sha}"


def _job(run: QueuedRun, web: str) -> dict[str, Any]:
    return {
        "commit_url": commit_url(run, web),
        "run_id": run.id,
        "rule": run.rule,
        "event_id": run.event_id,
        "event_type": run.event_type,
        "project": run.project,
        "step": run.step,
        "attempt": run.attempts,
        "started": run.to_dict()["started"],
    }


def _read(triggers: TriggerService, slots: list[int | None]) -> tuple[dict[int, QueuedRun], int]:
    store, lane = triggers.queue, triggers.executor.lane
    runs = {}
    for run_id in slots:
        if run_id is None:
            continue
        try:
            runs[run_id] = store.get(run_id)
        except RunNotFound:  # pragma: no cover - a run is never deleted from the queue
            continue
    return runs, store.count(QUEUED, lane)


async def summarize(triggers: TriggerService | None) -> dict[str, Any] | None:
    """mobu's CiManagerSummary of the run queue; None when the service has none (no trigger
    rules: nothing is ever queued), as mobu's is without a GitHub CI app."""
    if triggers is None or triggers.rules is None:
        return None
    executor = triggers.executor
    slots = list(executor.slots)
    processed = list(executor.processed)
    runs, queued = await asyncio.to_thread(_read, triggers, slots)
    web = web_url(triggers.cfg.github.api_url)
    workers = []
    for number, run_id in enumerate(slots):
        run = runs.get(run_id) if run_id is not None else None
        workers.append(
            {
                "user": {
                    "username": f"{executor.lane}-slot-{number + 1}",
                    "uidnumber": None,
                    "gidnumber": None,
                },
                "num_processed": processed[number],
                "current_job": _job(run, web) if run is not None else None,
            }
        )
    summary = CiManagerSummary.model_validate({"workers": workers, "num_queued": queued})
    return summary.model_dump(mode="json")
