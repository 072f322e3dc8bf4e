"""The run history: the results store (``library.results``), read as runs and their figures.

`ci/run` records every run (also failed ones) after its report: a group per run, and an INFO
result per timed operation holding its count, success % and percentiles; `report compare
--against-history N` compares a run with the median of the last N runs of the same project
and presets; `report history` lists them. Recording the same run directory again replaces its
results. One store, not two: the runs the queue starts land in the same one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from library.errors import UserError
from library.results.store import ResultsStore, default_url

log = logging.getLogger(__name__)

ENV_VAR = "BOSUN_HISTORY_DB"  # kept: the results store's $BOSUN_RESULTS_STORE comes first
_OP_FIELDS = ("count", "failures", "success_pct", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def default_path() -> str:
    """$BOSUN_RESULTS_STORE, else $BOSUN_HISTORY_DB, else artifacts/results.sqlite."""
    return default_url()


def record(run_dir: Path, db_path: str | Path | None = None) -> int | None:
    """Record the run in the results store and return its group id; None (logged) when the
    directory holds no run."""
    from library.results.record import record_run

    group_id = record_run(run_dir, db_path)
    if group_id is None:
        log.info("history: %s holds no run; nothing recorded", run_dir)
    return group_id


def recent(
    db_path: str | Path | None = None,
    project: str | None = None,
    presets: list[str] | None = None,
    last: int = 20,
    exclude_root: str | Path | None = None,
) -> list[dict[str, Any]]:
    """The last `last` runs, newest first, each with its operations keyed by `flock/operation`."""
    store = ResultsStore(db_path, create=False)
    try:
        groups = store.groups(
            project=project,
            presets=presets,
            last=last,
            exclude_root=str(Path(exclude_root).resolve()) if exclude_root is not None else None,
        )
        runs = []
        for group in groups:
            data = group["data"]
            operations = {}
            for result in store.group_results(group["id"]):
                figures = result["data"]
                if result["outcome"] != "INFO" or "key" not in figures:
                    continue
                operations[figures["key"]] = {
                    "key": figures["key"],
                    "flock": figures.get("flock", ""),
                    "operation": figures.get("operation", ""),
                    **{f: figures.get(f) for f in _OP_FIELDS},
                }
            runs.append(
                {
                    "id": group["id"],
                    "root": group["root"],
                    "project": group["project"],
                    "step": group["step"],
                    "presets": group["presets"],
                    "start": group["start"],
                    "end": group["end"],
                    "result": group["result"],
                    "events": int(data.get("events") or 0),
                    "client_bound": bool(data.get("client_bound")),
                    "operations": dict(sorted(operations.items())),
                }
            )
        return runs
    finally:
        store.close()


def baseline(stats: dict[str, Any], n: int, db_path: str | Path | None = None) -> dict[str, Any]:
    """Stats-shaped medians of the last `n` runs with the run's project and presets."""
    import numpy as np

    if n < 1:
        raise UserError(f"--against-history {n}: give at least 1 run")
    project, presets = stats.get("project"), list(stats.get("presets") or [])
    if not project:
        raise UserError(
            f"{stats.get('root')}: the run names no project, so it has no history "
            "to compare with; compare it with another run directory"
        )
    # Runs without timed operations (a failed prepare) are in the store too: not a baseline.
    runs = recent(
        db_path,
        project=project,
        presets=presets,
        last=max(n * 4, 50),
        exclude_root=stats.get("root"),
    )
    runs = [r for r in runs if r["operations"]][:n]
    label = f"{project} [{', '.join(presets) or 'no presets'}]"
    if not runs:
        raise UserError(
            f"history: no earlier run of {label} in "
            f"{db_path or default_path()}; record some with ci/run first"
        )
    keys = sorted({k for r in runs for k in r["operations"]})
    rows = []
    for key in keys:
        present = [r["operations"][key] for r in runs if key in r["operations"]]
        row = {
            "key": key,
            "flock": present[0]["flock"],
            "operation": present[0]["operation"],
            "runs": len(present),
        }
        for field in _OP_FIELDS:
            values = [p[field] for p in present if p[field] is not None]
            row[field] = float(np.median(values)) if values else None
        rows.append(row)
    return {
        "root": f"median of the last {len(runs)} run(s) of {label}",
        "project": project,
        "presets": presets,
        "operations": rows,
        "history_runs": [r["root"] for r in runs],
    }
