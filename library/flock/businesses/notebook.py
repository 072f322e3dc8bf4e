"""NotebookRunner and its variants: run notebooks cell by cell in the user's lab.

- NotebookRunner: every notebook of the repository (or directory) in turn, forever.
- NotebookRunnerCounting: the same, and the business ends after `max_executions` notebooks.
- NotebookRunnerList: only `notebooks_to_run`, once through the list, then the business ends.
- NotebookRunnerInfinite: never refreshes the lab (no `max_executions` cycle).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from library.flock.businesses.lab import LabBusiness


class NotebookRunner(LabBusiness):
    finite = False
    refreshes = True

    async def startup(self) -> None:
        self.notebooks = await asyncio.to_thread(self._find_notebooks)
        if not self.notebooks:
            raise FileNotFoundError(f"no notebooks to run in {self.root}")
        self.position = 0
        await super().startup()

    def _find_notebooks(self) -> list[Path]:
        from library.notebooks.discovery import discover

        opts = self.options
        if opts.notebooks_dir:
            self.root = Path(opts.notebooks_dir)
        elif opts.repo_url:
            from library import env
            from library.notebooks.source import checkout

            self.root = checkout(opts.repo_url, opts.repo_ref, env.artifact_dir() / ".repos")
        else:
            raise ValueError("give notebooks_dir or repo_url")
        found = discover(self.root, exclude_dirs=list(opts.exclude_dirs)).selected
        if opts.notebooks_to_run is not None:
            wanted = set(opts.notebooks_to_run)
            found = [p for p in found if p.relative_to(self.root.resolve()).as_posix() in wanted]
        return found

    async def execute(self) -> bool:
        from library.notebooks.labrun import run_in_kernel

        path = self.notebooks[self.position % len(self.notebooks)]
        self.position += 1
        label = path.relative_to(self.root.resolve()).as_posix()
        await run_in_kernel(
            self.kernel,
            path,
            cell_timeout=self.options.jupyter_timeout,
            label=label,
            recorder=self.recorder,
        )
        self.executions += 1
        return self._finished()

    def _finished(self) -> bool:
        return False

    async def idle(self) -> None:
        if not self.refreshes:
            await asyncio.sleep(self.options.execution_idle_time)
            return
        await super().idle()


class NotebookRunnerCounting(NotebookRunner):
    def _finished(self) -> bool:
        return self.executions >= self.options.max_executions


class NotebookRunnerList(NotebookRunner):
    def _finished(self) -> bool:
        return self.position >= len(self.notebooks)


class NotebookRunnerInfinite(NotebookRunner):
    refreshes = False
