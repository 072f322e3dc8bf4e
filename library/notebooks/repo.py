"""Run a set of notebooks: locally with papermill, or in one user's lab (mobu's NotebookRunner).

Every notebook runs even when an earlier one failed; each outcome is reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from library.errors import one_line
from library.jupyter.errors import (
    ExecutionError,
    ExecutionTimeout,
    JupyterError,
    KernelDied,
)
from library.notebooks.labrun import run_in_kernel
from library.notebooks.local import run_local
from library.progress import progress

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    notebook: str
    ok: bool
    duration_s: float
    cells: list[dict]
    error: str = ""
    error_class: str = ""
    cell: int | None = None
    traceback: str = ""

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook,
            "ok": self.ok,
            "duration_s": round(self.duration_s, 6),
            "cell": self.cell,
            "error_class": self.error_class,
            "error": self.error,
            "cells": self.cells,
        }


def _failure(label: str, exc: Exception, started: float) -> Outcome:
    tb = exc.plain_traceback() if isinstance(exc, ExecutionError) else ""
    return Outcome(
        label,
        False,
        time.perf_counter() - started,
        [],
        error=one_line(str(exc), 500),
        error_class=type(exc).__name__,
        cell=getattr(exc, "cell", None),
        traceback=tb,
    )


def run_local_set(
    notebooks: list[tuple[Path, str]],
    out_dir: Path,
    *,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = None,
    recorder=None,
) -> list[Outcome]:
    """Each (path, label) with papermill; executed copies go to OUT_DIR/label."""
    outcomes = []
    with progress(len(notebooks), "notebooks") as advance:
        for path, label in notebooks:
            started = time.perf_counter()
            try:
                run = run_local(
                    path,
                    out_dir / label,
                    parameters=parameters,
                    timeout=timeout,
                    label=label,
                    recorder=recorder,
                )
                outcomes.append(Outcome(label, True, run.duration_s, run.cells))
            except (ExecutionError, ExecutionTimeout, KernelDied) as exc:
                outcomes.append(_failure(label, exc, started))
            _log_outcome(outcomes[-1])
            advance()
    return outcomes


def _log_outcome(outcome: Outcome) -> None:
    log.info("%s %s", "ok  " if outcome.ok else "FAIL", outcome.error or outcome.notebook)


async def run_lab_set(
    lab,
    notebooks: list[tuple[Path, str]],
    *,
    parameters: dict[str, Any] | None = None,
    cell_timeout: float = 300.0,
    max_executions: int = 25,
    spawn_timeout: float = 180.0,
    delete_timeout: float = 60.0,
    recorder=None,
    spawn_options: dict | None = None,
) -> list[Outcome]:
    """Each notebook in LAB's kernel; after MAX_EXECUTIONS notebooks the lab is respawned.

    A notebook whose kernel died or stayed busy gets a fresh kernel for the next one. The lab
    is left running at the end; the caller deletes it.
    """
    outcomes: list[Outcome] = []
    kernel = None
    executions = 0
    try:
        with progress(len(notebooks), "notebooks in the lab") as advance:
            for path, label in notebooks:
                if kernel is not None and executions >= max_executions:
                    await kernel.aclose()
                    kernel = None
                    await lab.delete_lab(timeout=delete_timeout)
                    executions = 0
                started = time.perf_counter()
                try:
                    if kernel is None:
                        await lab.spawn_lab(timeout=spawn_timeout, **(spawn_options or {}))
                        kernel = await lab.open_kernel()
                    executions += 1
                    run = await run_in_kernel(
                        kernel,
                        path,
                        parameters=parameters,
                        cell_timeout=cell_timeout,
                        label=label,
                        recorder=recorder,
                    )
                    outcomes.append(Outcome(label, True, run.duration_s, run.cells))
                except JupyterError as exc:
                    outcomes.append(_failure(label, exc, started))
                    if kernel is not None and kernel.dead:
                        await kernel.aclose()
                        kernel = None
                _log_outcome(outcomes[-1])
                advance()
    finally:
        if kernel is not None:
            await kernel.aclose()
    return outcomes
