"""Run a notebook in this process with papermill, timing the notebook and each cell."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from library.artifacts import Operation
from library.jupyter.errors import ExecutionError, ExecutionTimeout, KernelDied
from library.jupyter.timing import NoRecorder, now_us
from library.notebooks.files import read_notebook


@dataclass
class NotebookRun:
    """One executed notebook: where, how long, and each cell's duration."""

    path: str
    duration_s: float = 0.0
    cells: list[dict] = field(default_factory=list)  # {"cell": n, "duration_s": s}
    output: str = ""

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "duration_s": round(self.duration_s, 6),
            "cells": self.cells,
            "output": self.output,
        }


def run_local(
    path: Path,
    output: Path,
    *,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = None,
    label: str = "",
    recorder=None,
    kernel_name: str = "python3",
) -> NotebookRun:
    """Execute PATH with papermill (cwd = its directory), writing the result to OUTPUT.

    Raises ExecutionError / ExecutionTimeout / KernelDied naming the notebook and the cell
    (numbered as in the source notebook, from 1).
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    read_notebook(path)  # a broken file is bad input, not a papermill traceback
    rec = recorder if recorder is not None else NoRecorder()
    label = label or str(path)
    run = NotebookRun(label, output=str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    start_us = now_us()
    error: Exception | None = None
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=parameters or {},
            kernel_name=kernel_name,
            # Notebooks without kernelspec metadata are still Python to us.
            language="python",
            cwd=str(path.parent),
            execution_timeout=timeout,
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - nbclient raises timeouts/deaths of its own types
        error = _translate(exc, label)
        if error is exc:
            raise
    run.duration_s = time.perf_counter() - started
    executed = nbformat.read(output, as_version=4) if output.exists() else None
    failed_cell = _record_cells(executed, run, rec, label) if executed else None
    if isinstance(error, PapermillExecutionError):
        error = ExecutionError(
            error.ename,
            error.evalue,
            list(error.traceback or []),
            notebook=label,
            cell=failed_cell,
        )
    elif isinstance(error, (ExecutionTimeout, KernelDied)):
        error.cell = failed_cell
        error.args = (f"{label} cell {failed_cell}: {error.args[0]}",)
    rec.record(
        Operation.NOTEBOOK,
        start_us,
        int(run.duration_s * 1e6),
        success=error is None,
        target=label,
        error_class=type(error).__name__ if error else "",
        error=str(error).splitlines()[0][:200] if error else "",
    )
    if error is not None:
        raise error
    return run


def _translate(exc: Exception, label: str) -> Exception:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if isinstance(exc, CellTimeoutError):
        return ExecutionTimeout(0, notebook=label)
    if isinstance(exc, DeadKernelError):
        return KernelDied(str(exc).splitlines()[0] if str(exc) else "kernel died", notebook=label)
    return exc


# Cells papermill adds to the executed copy; numbering follows the source notebook.
_ADDED_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


def _source_cells(nb) -> list:
    return [c for c in nb.cells if not _ADDED_TAGS & set(c.get("metadata", {}).get("tags", []))]


def _record_cells(nb, run: NotebookRun, rec, label: str) -> int | None:
    """Record each executed cell; the source-numbered cell that failed, if any."""
    failed = None
    for number, cell in enumerate(_source_cells(nb), start=1):
        pm = cell.get("metadata", {}).get("papermill", {})
        if cell.get("cell_type") != "code" or not pm.get("start_time"):
            continue
        duration = pm.get("duration")
        if duration is None:
            duration = 0.0
        ok = pm.get("status") != "failed" and not any(
            o.get("output_type") == "error" for o in cell.get("outputs", [])
        )
        if not ok and failed is None:
            failed = number
        run.cells.append({"cell": number, "duration_s": round(float(duration), 6), "ok": ok})
        start_us = int(
            datetime.fromisoformat(pm["start_time"].replace("Z", "+00:00")).timestamp() * 1e6
        )
        rec.record(
            Operation.CELL,
            start_us,
            int(float(duration) * 1e6),
            success=ok,
            target=f"{label}#cell-{number}",
            error_class="" if ok else "ExecutionError",
        )
    # A timeout or dead kernel leaves the running cell marked "running", not "failed".
    if failed is None:
        for n, cell in enumerate(_source_cells(nb), start=1):
            if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
                return n
    return failed
