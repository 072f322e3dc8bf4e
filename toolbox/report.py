"""Post-mortem of artifact trees: the offline HTML report, run comparison, run history."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from library import artifacts, env, report
from library.errors import UserError
from library.eventstore import parse_time
from library.report import compare as cmp
from library.report import history as hist
from library.report.parse import EVENTS_RANGE
from library.toolbox import command

log = logging.getLogger(__name__)


@command(record=False)
def post_mortem(
    run_dir: Path, /, since: str | None = None, until: str | None = None
) -> dict[str, Any]:
    """Write the post-mortem report of an artifact directory.

    Reads the tree alone (toolbox results, events and engine health in Parquet, summaries,
    config snapshot, run.json) and writes ``report/index.html`` with its plots and
    ``report/stats.json`` (what ``report compare`` and the history read). Works on a whole
    ``ci/run`` tree, one ``scale run`` or one command; failed, partial and empty runs get a page
    too. Open the page from disk: every link is relative, nothing is fetched. On a standing
    service's state dir, ``--since``/``--until`` report on that time of its events (hour
    partitions outside it are not opened).

    Args:
        run_dir: The artifact directory to report on.
        since: Only events that started at or after this time (ISO 8601, UTC when no zone is
            given, or epoch seconds).
        until: Only events that started before this time (same forms).
    """
    try:
        start, end = (
            None if value is None else parse_time(value, f"report post_mortem --{name}")
            for name, value in (("since", since), ("until", until))
        )
        bounds = (start, end)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    token = EVENTS_RANGE.set(bounds)
    try:
        index = report.post_mortem(run_dir)
    finally:
        EVENTS_RANGE.reset(token)
    stats = json.loads((index.parent / artifacts.STATS_JSON).read_text())
    print(index)
    return {
        "index": str(index),
        "events": stats["events"],
        "result": stats["result"],
        "operations": len(stats["operations"]),
    }


@command
def compare(
    runs: list[str],
    /,
    threshold: list[str] | None = None,
    against_history: int | None = None,
    db: Path | None = None,
) -> dict[str, Any]:
    """Compare runs operation by operation; fail when a threshold is exceeded.

    The first run is the base and every other run is compared with it: success % (difference
    in points) and p50/p95/p99 latency (change in %), per ``flock/operation``. Prints the table
    and writes ``compare/`` (``compare.txt``, ``compare.json``, overlay plots) in the artifact
    dir. With a threshold exceeded it exits 1 naming the operation, metric, delta and threshold:
    use it as a CI regression gate.

    Args:
        runs: Run directories (or their ``report/stats.json``); the first is the base.
        threshold: ``METRIC=PCT`` for every operation or ``OPERATION.METRIC=PCT`` for one, METRIC
            one of p50, p95, p99 (largest allowed rise in %) or success_pct (largest allowed drop
            in points), e.g. ``p95=20``, ``tap_query.p95=10``, ``success_pct=1``. Repeatable.
        against_history: Compare the one run given with the median of the last N recorded runs
            of the same project and presets.
        db: Results store the history is kept in ($BOSUN_RESULTS_STORE, else $BOSUN_HISTORY_DB,
            else artifacts/results.sqlite).
    """
    result = cmp.run(
        runs, threshold or [], against_history, env.artifact_dir() / "compare", db_path=db
    )
    print(result["text"])
    cmp.check(result)
    return {
        "runs": result["runs"],
        "violations": len(result["violations"]),
        "plots": result["plots"],
    }


@command(record=False)
def history(db: Path | None = None, project: str | None = None, last: int = 20) -> dict[str, Any]:
    """List the recent runs of the history, newest first.

    ``ci/run`` records every run it finishes (project, presets, start, result, and per
    operation count, success %, p50/p95/p99).

    Args:
        db: Results store the history is kept in ($BOSUN_RESULTS_STORE, else $BOSUN_HISTORY_DB,
            else artifacts/results.sqlite).
        project: Only the runs of this project.
        last: How many runs to show.
    """
    if last < 1:
        raise UserError(f"--last {last}: give at least 1")
    runs = hist.recent(db, project=project, last=last)
    if not runs:
        print("no runs recorded" + (f" for project {project}" if project else ""))
    for r in runs:
        ops = sorted(r["operations"].values(), key=lambda o: -(o["count"] or 0))[:3]
        parts = ", ".join(
            f"{o['key']} n={o['count']:,} {o['success_pct']:.1f}% p95={o['p95_ms'] or 0:,.0f}ms"
            for o in ops
        )
        print(
            f"{r['start'] or '?':<25} {r['project'] or '?':<14} "
            f"[{','.join(r['presets'])}] {r['result'] or '?':<10} {parts}"
        )
        print(f"{'':<25} {r['root']}")
    return {
        "runs": [
            {k: v for k, v in r.items() if k != "operations"}
            | {"operations": list(r["operations"].values())}
            for r in runs
        ]
    }
