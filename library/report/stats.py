"""The per-operation summary of a run, as `compare` and `history` read it.

`report post_mortem` leaves it in `report/stats.json`; a run without one is summarised from its
events on the spot (tables only, no plots, nothing written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from library import artifacts
from library.errors import UserError
from library.stats import LIFECYCLE

STATS_PATH = Path(artifacts.REPORT_DIR) / artifacts.STATS_JSON
METRICS = ("success_pct", "p50_ms", "p95_ms", "p99_ms")


def load(path: str | Path) -> dict[str, Any]:
    """Stats of a run dir, of its report dir, or of a stats.json file; UserError if none."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / STATS_PATH, path / artifacts.STATS_JSON]
    for file in candidates:
        if file.is_file():
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError) as err:
                raise UserError(
                    f"{file}: not a readable stats file ({err}); rebuild it with report post_mortem"
                ) from None
            if not isinstance(data, dict) or not isinstance(data.get("operations"), list):
                raise UserError(
                    f"{file}: no 'operations' list; rebuild it with report post_mortem"
                ) from None
            data.setdefault("root", str(path.parent.parent if path.is_file() else path))
            return _refresh_identity(data, Path(data["root"]))
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory or stats.json")
    return compute(path)


def compute(run_dir: Path) -> dict[str, Any]:
    """Stats straight from the artifact tree (the same fields `report/stats.json` holds)."""
    from library.report import parse, tables

    run = parse.read_run(run_dir)
    start, end = run.start_end
    return {
        "version": 1,
        "root": str(run_dir),
        "project": run.project,
        "step": run.step,
        "presets": run.presets,
        "overrides": run.overrides,
        "start": start,
        "end": end,
        "result": run.result,
        "exit_code": run.exit_code,
        "events": len(run.events) if run.events is not None else 0,
        "client_bound": bool(run.client_bound),
        "operations": tables.summary(run.events),
        "commands": len(run.commands),
    }


def _refresh_identity(data: dict[str, Any], root: Path) -> dict[str, Any]:
    """run.json is written after ci/run's own report: prefer its header when it is there."""
    info_path = root / artifacts.RUN_INFO
    if not info_path.is_file():
        return data
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return data
    if not isinstance(info, dict):
        return data
    for key in ("project", "step", "presets", "start", "end"):
        if info.get(key):
            data[key] = info[key]
    if isinstance(info.get("exit_code"), int):
        data["exit_code"] = info["exit_code"]
        data["result"] = (
            "success" if info["exit_code"] == 0 else (f"failure (exit code {info['exit_code']})")
        )
    return data


def operations(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Operation rows keyed by `flock/operation`, engine bookkeeping left out."""
    out = {}
    for row in stats.get("operations") or []:
        if isinstance(row, dict) and row.get("operation") not in LIFECYCLE and "key" in row:
            out[str(row["key"])] = row
    return out
