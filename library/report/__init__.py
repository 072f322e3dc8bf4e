"""Post-mortem of an artifact tree: plots, an offline HTML page, comparison and history.

Importing this package does no work; the heavy modules load when a function is called.
"""

from __future__ import annotations

from pathlib import Path

from library.errors import UserError


def post_mortem(run_dir: str | Path) -> Path:
    """Write `run_dir/report/index.html` (plots, tables, links) and return its path.

    Partial, failed and empty runs still get a page that says what is there; only a `run_dir`
    that is not a directory is an error.
    """
    from library.report.build import build

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(
            f"report post_mortem: {run_dir} is not a directory; pass an artifact directory"
        )
    return build(run_dir)


def record_history(run_dir: str | Path, db_path: str | Path | None = None) -> int | None:
    """Append the run's summary to the history; its id, or None (logged) when not recorded."""
    from library.report.history import record

    return record(Path(run_dir), db_path)
