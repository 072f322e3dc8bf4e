"""mobu's notebook runners: run a repository's notebooks cell by cell in the user's lab.

Which notebooks run is mobu's rule (library/notebooks/discovery.py): the flock's
``collection_rules`` and ``exclude_dirs``, then the repository's own ``mobu.yaml``.

- NotebookRunnerCounting: one notebook per execution; the lab is refreshed (deleted if
  ``delete_lab``, then spawned again) after every ``max_executions`` notebooks.
- NotebookRunnerList: every notebook once, then the business ends (bosun: mobu's CI runs a
  list once; a mobu flock would refresh the lab and go round again).
- NotebookRunnerInfinite: never refreshes the lab.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from library import env
from library.flock.businesses.base import say
from library.flock.businesses.endpoints import discovery
from library.flock.businesses.lab import LabBusiness
from library.flock.options import NotebookRunnerCountingOptions, NotebookRunnerOptions
from library.notebooks.discovery import discover
from library.notebooks.labrun import run_in_kernel
from library.notebooks.source import checkout

if TYPE_CHECKING:
    from library.jupyter.messages import ExecutionResult

NotebookOptionsT = TypeVar("NotebookOptionsT", bound=NotebookRunnerOptions)


class NotebookRunner(LabBusiness[NotebookOptionsT]):
    refreshes = True
    # mobu's NotebookRunnerData: the notebook running (or last run: mobu keeps its name until
    # the business refreshes) and the cell being executed now.
    notebook: str | None = None
    running_code: str | None = None

    async def startup(self) -> None:
        # mobu drops notebooks whose required applications the environment lacks, as its
        # service discovery lists them; without a discovery document nothing is dropped.
        doc = await discovery(self.ctx.shared)
        self.applications = list(doc.applications) if doc is not None else None
        self.notebooks = await asyncio.to_thread(self._find_notebooks)
        if not self.notebooks:
            raise FileNotFoundError(f"no notebooks to run in {self.root}")
        say("Repository cloned and ready")
        self.position = 0
        await super().startup()

    def _find_notebooks(self) -> list[Path]:
        opts = self.options
        if opts.notebooks_dir:
            self.root = Path(opts.notebooks_dir)
        elif opts.repo_url:
            self.root = checkout(opts.repo_url, opts.repo_ref, env.artifact_dir() / ".repos")
        else:
            raise ValueError("give notebooks_dir or repo_url")
        found = discover(
            self.root,
            exclude_dirs=list(opts.exclude_dirs),
            collection_rules=list(opts.collection_rules),
            services=self.applications,
        ).selected
        return found

    async def execute(self) -> bool:
        path = self.notebooks[self.position % len(self.notebooks)]
        self.position += 1
        label = path.relative_to(self.root.resolve()).as_posix()
        count, size = self.iteration()
        if count == 1:
            say("Starting next iteration")
        self.notebook = path.name
        say(f"Notebook {path.name} iteration {count}/{size}")
        await run_in_kernel(
            self._kernel(),
            path,
            cell_timeout=self.options.cell_execution_timeout or self.options.jupyter_timeout,
            label=label,
            recorder=self.recorder,
            watch=self,
        )
        say(f"Success running notebook {path.name}")
        self.executions += 1
        if self.position % len(self.notebooks) == 0:
            say("Done with this cycle of notebooks")
        return self._finished()

    def iteration(self) -> tuple[int, int | str]:
        """mobu's place of the notebook under way in its iteration: (count from 1, size)."""
        return self.executions + 1, "infinite"

    def cell_started(self, number: int, source: str) -> None:
        self.running_code = source
        say(f"Executing cell {number}:\n{source}\n")

    def cell_finished(self, number: int, result: ExecutionResult | None) -> None:
        self.running_code = None
        if result is not None:
            say(f"Result:\n{result.stdout}\n")

    def monkey_data(self) -> dict[str, Any]:
        data = super().monkey_data()
        if self.notebook is not None:
            data["notebook"] = self.notebook
        if self.running_code is not None:
            data["running_code"] = self.running_code
        return data

    def _finished(self) -> bool:
        return False

    def cycle_done(self) -> bool:
        return self.executions % len(self.notebooks) == 0

    async def idle(self) -> None:
        if self.options.notebook_idle_time:
            await asyncio.sleep(self.options.notebook_idle_time)
        if not self.refreshes:
            await asyncio.sleep(self.options.execution_idle_time)
            return
        await super().idle()


class NotebookRunnerCounting(NotebookRunner[NotebookRunnerCountingOptions]):
    def iteration(self) -> tuple[int, int | str]:
        return self.executions % self.options.max_executions + 1, self.options.max_executions

    def cycle_done(self) -> bool:
        return self.executions % self.options.max_executions == 0


class NotebookRunnerList(NotebookRunner[NotebookRunnerOptions]):
    def iteration(self) -> tuple[int, int | str]:
        return self.position, len(self.notebooks)

    def _finished(self) -> bool:
        return self.position >= len(self.notebooks)


class NotebookRunnerInfinite(NotebookRunner[NotebookRunnerOptions]):
    refreshes = False
