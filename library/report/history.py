"""A local SQLite history of finished runs: one row per run, one row per operation of it.

`ci/run` appends every run (also failed ones) after its report; `report compare
--against-history N` compares a run with the median of the last N runs of the same project and
presets; `report history` lists them. Recording the same run directory again replaces its rows.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_VAR = "BOSUN_HISTORY_DB"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    root TEXT NOT NULL UNIQUE,
    project TEXT,
    step TEXT,
    presets TEXT NOT NULL,          -- JSON list, in the order applied
    start TEXT,
    end_time TEXT,
    result TEXT,
    events INTEGER NOT NULL,
    client_bound INTEGER NOT NULL,
    recorded TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_project ON runs (project, presets, start);
CREATE TABLE IF NOT EXISTS operations (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,              -- flock/operation
    flock TEXT NOT NULL,
    operation TEXT NOT NULL,
    count INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    success_pct REAL,
    p50_ms REAL,
    p95_ms REAL,
    p99_ms REAL,
    max_ms REAL,
    PRIMARY KEY (run_id, key)
);
"""
_OP_FIELDS = ("count", "failures", "success_pct", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def default_path() -> Path:
    """$BOSUN_HISTORY_DB, else artifacts/history.sqlite in the repository."""
    from library.config import repo_root

    return Path(os.environ.get(ENV_VAR) or repo_root() / "artifacts" / "history.sqlite")


def _connect(db_path: str | Path | None, *, create: bool):
    import sqlite3

    from library.errors import UserError

    path = Path(db_path) if db_path else default_path()
    if not create and not path.is_file():
        raise UserError(
            f"history {path}: no such database; runs are recorded there by ci/run "
            f"(set ${ENV_VAR} or pass --db)"
        )
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        db.executescript(_SCHEMA)
    except (OSError, sqlite3.Error) as err:
        raise UserError(f"history {path}: {err}") from None
    return db


def record(run_dir: Path, db_path: str | Path | None = None) -> int | None:
    """Append the run's summary and return its row id; None (logged) when it has nothing."""
    import datetime as dt

    from library.report import stats as stats_mod

    stats = stats_mod.load(run_dir)
    ops = stats_mod.operations(stats)
    if not ops:
        log.info("history: %s has no timed operations; nothing recorded", run_dir)
        return None
    root = str(Path(run_dir).resolve())
    db = _connect(db_path, create=True)
    try:
        with db:
            db.execute("DELETE FROM runs WHERE root = ?", (root,))
            cur = db.execute(
                "INSERT INTO runs (root, project, step, presets, start, end_time, result, events,"
                " client_bound, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    root,
                    stats.get("project"),
                    stats.get("step"),
                    json.dumps(list(stats.get("presets") or [])),
                    stats.get("start"),
                    stats.get("end"),
                    stats.get("result"),
                    int(stats.get("events") or 0),
                    int(bool(stats.get("client_bound"))),
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                ),
            )
            run_id = int(cur.lastrowid)
            db.executemany(
                "INSERT INTO operations (run_id, key, flock, operation, count, failures,"
                " success_pct, p50_ms, p95_ms, p99_ms, max_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        run_id,
                        key,
                        str(r.get("flock") or ""),
                        str(r.get("operation") or ""),
                        *(r.get(f) for f in _OP_FIELDS),
                    )
                    for key, r in ops.items()
                ],
            )
    finally:
        db.close()
    log.info(
        "history: recorded %s (%d operations) in %s", run_dir, len(ops), db_path or default_path()
    )
    return run_id


def recent(
    db_path: str | Path | None = None,
    project: str | None = None,
    presets: list[str] | None = None,
    last: int = 20,
    exclude_root: str | Path | None = None,
) -> list[dict[str, Any]]:
    """The last `last` runs, newest first, each with its operations keyed by `flock/operation`."""
    db = _connect(db_path, create=False)
    try:
        where, args = [], []
        if project is not None:
            where.append("project = ?")
            args.append(project)
        if presets is not None:
            where.append("presets = ?")
            args.append(json.dumps(list(presets)))
        if exclude_root is not None:
            where.append("root != ?")
            args.append(str(Path(exclude_root).resolve()))
        sql = (
            "SELECT id, root, project, step, presets, start, end_time, result, events,"
            " client_bound FROM runs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY start DESC, id DESC LIMIT ?"
        )
        runs = []
        for row in db.execute(sql, (*args, int(last))).fetchall():
            run = dict(
                zip(
                    (
                        "id",
                        "root",
                        "project",
                        "step",
                        "presets",
                        "start",
                        "end",
                        "result",
                        "events",
                        "client_bound",
                    ),
                    row,
                    strict=True,
                )
            )
            run["presets"] = json.loads(run["presets"])
            run["client_bound"] = bool(run["client_bound"])
            run["operations"] = {
                op[0]: dict(zip(("key", "flock", "operation", *_OP_FIELDS), op, strict=True))
                for op in db.execute(
                    "SELECT key, flock, operation, "
                    + ", ".join(_OP_FIELDS)
                    + " FROM operations WHERE run_id = ? ORDER BY key",
                    (run["id"],),
                )
            }
            runs.append(run)
        return runs
    finally:
        db.close()


def baseline(stats: dict[str, Any], n: int, db_path: str | Path | None = None) -> dict[str, Any]:
    """Stats-shaped medians of the last `n` runs with the run's project and presets."""
    import numpy as np

    from library.errors import UserError

    if n < 1:
        raise UserError(f"--against-history {n}: give at least 1 run")
    project, presets = stats.get("project"), list(stats.get("presets") or [])
    if not project:
        raise UserError(
            f"{stats.get('root')}: the run names no project, so it has no history "
            "to compare with; compare it with another run directory"
        )
    runs = recent(db_path, project=project, presets=presets, last=n, exclude_root=stats.get("root"))
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
