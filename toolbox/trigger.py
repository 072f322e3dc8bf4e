"""Events to runs: match trigger rules, fire them (Taskotron's runtask), the run queue."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import sys
from pathlib import Path

from library import env, yamlio
from library.errors import CheckFailed, UserError
from library.queue.executor import Executor, fire_lane
from library.queue.store import QueueStore
from library.results.store import default_url
from library.toolbox import command
from library.triggers import events
from library.triggers import rules as rules_mod
from library.triggers.checks import CheckReporter
from library.triggers.dispatch import Dispatcher
from library.triggers.github import DEFAULT_API_URL, CheckRuns


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@command(record=False)
def match(rules: Path, event: Path) -> dict:
    """Print, as YAML, the runs an event would queue under the rules; run nothing.

    Each run is ``{project, step, presets, vars}``, in rule order; an event no rule matches
    prints ``[]``. The rule file is checked whole first (docs/triggers.md).

    Args:
        rules: Trigger rule file (``- when: {...} do: [{project, step, presets, vars}]``).
        event: Event file (YAML or JSON): ``type`` and its fields, ``id`` optional.
    """
    ruleset = rules_mod.load(rules)
    found = ruleset.match(events.load_file(event))
    sys.stdout.write(yamlio.dumps([run.to_dict() for run in found]))
    return {"runs": [run.to_dict() for run in found]}


@command
def fire(
    rules: Path,
    event: Path,
    concurrency: int = 2,
    queue: str | None = None,
    store: str | None = None,
    github_api_url: str | None = None,
    github_token_file: Path | None = None,
) -> dict:
    """Queue the runs an event asks for under the rules, run them, record their results.

    Taskotron's runtask for one event, without a service: the runs go through the persisted
    queue (a second firing of the same event queues nothing new) and run as ``ci/run
    PROJECT STEP`` processes, CONCURRENCY at a time, each in its own dir under ``runs/`` of
    this command's artifact dir; their results go to the results store. Exits 1 when a run
    failed.

    Args:
        rules: Trigger rule file.
        event: Event file (YAML or JSON): ``type`` and its fields, ``id`` optional.
        concurrency: Runs at a time.
        queue: Queue store: a SQLite path or postgresql:// URL ($BOSUN_QUEUE_STORE, else
            artifacts/queue.sqlite).
        store: Results store: a SQLite path or postgresql:// URL ($BOSUN_RESULTS_STORE, else
            artifacts/results.sqlite).
        github_api_url: GitHub API for rules that report a check run
            ($BOSUN_GITHUB_API_URL, else https://api.github.com).
        github_token_file: File holding the GitHub token for check runs
            ($BOSUN_GITHUB_TOKEN_FILE).
    """
    log = logging.getLogger(__name__)
    if concurrency < 1:
        raise UserError(f"--concurrency {concurrency}: give at least 1")
    ruleset = rules_mod.load(rules)
    the_event = events.load_file(event)
    requests = ruleset.match(the_event)
    results_url = store or default_url()
    token_file = github_token_file or os.environ.get("BOSUN_GITHUB_TOKEN_FILE")
    reporter = None
    if any(r.data.get("report") for r in requests) and not token_file:
        raise UserError(
            "a matching rule reports a GitHub check run: give --github-token-file "
            "(or $BOSUN_GITHUB_TOKEN_FILE)"
        )
    queue_store = QueueStore(queue)
    try:
        lane = fire_lane()
        executor = Executor(
            queue_store,
            env.artifact_dir() / "runs",
            lane=lane,
            concurrency=concurrency,
            results_url=results_url,
        )
        if token_file:
            api = github_api_url or os.environ.get("BOSUN_GITHUB_API_URL") or DEFAULT_API_URL
            reporter = CheckReporter(
                CheckRuns.from_file(api, Path(token_file), "bosun notebooks"), queue_store
            )
            executor.on_start.append(reporter.on_start)
            executor.on_finish.append(reporter.on_finish)
        accepted = Dispatcher(ruleset, queue_store, lane).accept(the_event, f"file {event}")
        mine = [run.id for run, _ in accepted.runs if run.lane == lane]
        for run, new in accepted.runs:
            if not new:
                log.info(
                    "run %d (%s %s) was queued by an earlier delivery of event %s: %s",
                    run.id,
                    run.project,
                    run.step,
                    the_event.id,
                    run.state,
                )

        async def go():
            await executor.recover()
            return await executor.run_until_done(mine) if mine else []

        finished = asyncio.run(go())
        by_id = {run.id: run for run in finished}
        runs = [by_id.get(run.id, run) for run, _ in accepted.runs]
    finally:
        queue_store.close()
    listing = [
        {
            "id": r.id,
            "project": r.project,
            "step": r.step,
            "state": r.state,
            "exit_code": r.exit_code,
            "artifact_dir": r.artifact_dir,
        }
        for r in runs
    ]
    for item in listing:
        print(
            f"run {item['id']}: {item['project']} {item['step']}: {item['state']} "
            f"({item['artifact_dir']})"
        )
    if not runs:
        print(f"event {the_event.id} ({the_event.type}): no rule matches; nothing to run")
    result = {"event_id": the_event.id, "duplicate": accepted.duplicate, "runs": listing}
    failed = [r for r in runs if r.state not in ("succeeded",) and r.id in mine]
    if failed:
        raise CheckFailed(
            f"{len(failed)} of {len(mine)} run(s) did not succeed: "
            + ", ".join(f"run {r.id} {r.project} {r.step} {r.state}" for r in failed)
        )
    return result


@command(record=False)
def runs(
    state: str | None = None, event_id: str | None = None, limit: int = 50, queue: str | None = None
) -> dict:
    """List the runs of the queue, newest first, as JSON.

    Args:
        state: Only runs in this state: queued, running, succeeded, failed, cancelled.
        event_id: Only the runs of this event.
        limit: How many runs at most.
        queue: Queue store (path or postgresql:// URL; $BOSUN_QUEUE_STORE, else
            artifacts/queue.sqlite).
    """
    store = QueueStore(queue)
    try:
        listed = [r.to_dict() for r in store.list(state=state, event_id=event_id, limit=limit)]
        counts = store.counts()
    finally:
        store.close()
    _print_json({"counts": counts, "runs": listed})
    return {"counts": counts, "runs": len(listed)}


@command(record=False)
def show(run_id: int, /, queue: str | None = None) -> dict:
    """Print one run of the queue (state, attempts, notes, artifact dir) and its event.

    Args:
        run_id: The run's id.
        queue: Queue store (path or postgresql:// URL; $BOSUN_QUEUE_STORE, else
            artifacts/queue.sqlite).
    """
    store = QueueStore(queue)
    try:
        run = store.get(run_id).to_dict()
        run["event"] = store.event(run["event_id"])
    finally:
        store.close()
    _print_json(run)
    return run


@command(record=False)
def cancel(run_id: int, /, queue: str | None = None) -> dict:
    """Cancel a run: a queued one at once, a running one by its executor (process ended).

    Args:
        run_id: The run's id.
        queue: Queue store (path or postgresql:// URL; $BOSUN_QUEUE_STORE, else
            artifacts/queue.sqlite).
    """
    store = QueueStore(queue)
    try:
        run = store.cancel(run_id, who=f"{getpass.getuser()} (cli)").to_dict()
    finally:
        store.close()
    _print_json(run)
    return {"id": run_id, "state": run["state"], "cancel_requested": run["cancel_requested"]}
