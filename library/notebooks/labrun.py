"""Run a notebook cell by cell in a lab kernel, as mobu's NotebookRunner does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from library.artifacts import Operation
from library.errors import one_line
from library.jupyter.errors import ExecutionError, ExecutionTimeout, KernelDied
from library.jupyter.timing import NoRecorder, now_us
from library.notebooks.files import read_notebook
from library.notebooks.local import NotebookRun
from library.notebooks.params import code_cells_with_parameters

if TYPE_CHECKING:
    from library.jupyter.kernel import Kernel
    from library.jupyter.messages import ExecutionResult
    from library.jupyter.timing import TimingRecorder


class CellWatcher(Protocol):
    """Told of each cell as it starts and ends (the result is None when the cell failed):
    a flock's notebook runner shows the running cell and logs it, as mobu's does."""

    def cell_started(self, number: int, source: str) -> None: ...

    def cell_finished(self, number: int, result: ExecutionResult | None) -> None: ...


async def run_in_kernel(
    kernel: Kernel,
    path: Path,
    *,
    parameters: dict[str, Any] | None = None,
    cell_timeout: float = 300.0,
    label: str = "",
    recorder: TimingRecorder | None = None,
    watch: CellWatcher | None = None,
) -> NotebookRun:
    """Execute the code cells of PATH in KERNEL; errors name the notebook and cell (from 1)."""
    rec = recorder if recorder is not None else NoRecorder()
    label = label or str(path)
    nb = read_notebook(path)
    run = NotebookRun(label)
    started = time.perf_counter()
    start_us = now_us()
    error: Exception | None = None
    for number, source in code_cells_with_parameters(nb, parameters or {}):
        if watch is not None:
            watch.cell_started(number, source)
        reply: ExecutionResult | None = None
        cell_start = now_us()
        t0 = time.perf_counter()
        try:
            reply = await kernel.execute(source, cell_timeout, record=False)
        except ExecutionError as exc:
            error = exc.with_context(label, number)
        except (ExecutionTimeout, KernelDied) as exc:
            exc.cell, exc.notebook = number, label
            exc.args = (f"{label} cell {number}: {exc.args[0]}",)
            error = exc
        finally:
            if watch is not None:
                watch.cell_finished(number, reply)
        duration = time.perf_counter() - t0
        run.cells.append({"cell": number, "duration_s": round(duration, 6), "ok": error is None})
        rec.record(
            Operation.CELL,
            cell_start,
            int(duration * 1e6),
            success=error is None,
            monkey=kernel.user,
            target=f"{label}#cell-{number}",
            error_class=type(error).__name__ if error else "",
            error=one_line(str(error), 200) if error else "",
        )
        if error is not None:
            break
    run.duration_s = time.perf_counter() - started
    rec.record(
        Operation.NOTEBOOK,
        start_us,
        int(run.duration_s * 1e6),
        success=error is None,
        monkey=kernel.user,
        target=label,
        error_class=type(error).__name__ if error else "",
        error=one_line(str(error), 200) if error else "",
    )
    if error is not None:
        raise error
    return run
