"""Notebooks as CI's report: a GitHub check run per run whose rule says ``report:
github_check``, created ``in_progress`` when the run starts and completed ``success`` or
``failure`` when it ends, with a summary and one annotation per failing notebook.

The check run's id is kept in the run's data in the queue, so a run queued again after a
restart completes the same check run; a run that ends without one (the service stopped
between queueing and starting) gets it created at the end.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from library.queue.store import CANCELLED, SUCCEEDED, QueuedRun, QueueStore
from library.triggers.github import CheckRuns, notebook_annotations

log = logging.getLogger(__name__)
REPORT = "github_check"


class CheckReporter:
    def __init__(self, client: CheckRuns, store: QueueStore) -> None:
        self.client = client
        self.store = store

    def _wanted(self, run: QueuedRun) -> bool:
        return run.data.get("report") == REPORT

    async def on_start(self, run: QueuedRun) -> None:
        if not self._wanted(run) or run.data.get("check_run_id"):
            return
        check_id = await self.client.create(run.data["repository"], run.data["git_sha"])
        await asyncio.to_thread(self.store.update_data, run.id, {"check_run_id": check_id})
        log.info("run %d: check run %d in progress on %s", run.id, check_id, run.data["git_sha"])

    async def on_finish(self, run: QueuedRun) -> None:
        if not self._wanted(run):
            return
        check_id = run.data.get("check_run_id")
        if not check_id:
            check_id = await self.client.create(run.data["repository"], run.data["git_sha"])
        annotations, total = (
            await asyncio.to_thread(notebook_annotations, Path(run.artifact_dir))
            if run.artifact_dir
            else ([], 0)
        )
        ok = run.state == SUCCEEDED
        conclusion = "success" if ok else ("cancelled" if run.state == CANCELLED else "failure")
        failed = len(annotations)
        if ok:
            title = f"{total} notebook(s) ran green"
        elif failed:
            title = f"{failed} of {total} notebook(s) failed"
        else:
            title = f"the run {run.state} ({run.error or 'no notebook failed'})"
        lines = [
            f"bosun run {run.id}: {run.project} {run.step}, {run.state}"
            + (f" (exit {run.exit_code})" if run.exit_code is not None else ""),
            "",
            f"Artifacts: `{run.artifact_dir}`",
        ]
        lines += [f"- `{a['path']}`: {a['title']}: {a['message']}" for a in annotations]
        await self.client.complete(
            run.data["repository"],
            int(check_id),
            conclusion,
            title,
            "\n".join(lines),
            annotations,
        )
        log.info("run %d: check run %s completed: %s", run.id, check_id, conclusion)
