"""The results store (ResultsDB's model): query results of runs and their testcases."""

from __future__ import annotations

import json
import sys
from typing import Any

from library.errors import UserError
from library.results.store import ResultsStore, parse_when
from library.toolbox import command


@command(record=False)
def query(
    testcase: str | None = None,
    outcome: list[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    data: list[str] | None = None,
    group: str | None = None,
    latest: bool = False,
    limit: int = 100,
    store: str | None = None,
) -> dict[str, Any]:
    """Print matching results as JSON lines, newest first.

    Each line is a result as ResultsDB shows one: ``id``, ``testcase {name}``, ``outcome``
    (PASSED, FAILED, INFO, NEEDS_INSPECTION), ``ref_url``, ``note``, ``submit_time``,
    ``groups`` (the run's group uuid) and ``data`` (project, step, presets, event id, git
    ref...).

    Args:
        testcase: Testcase name, or a prefix ending in ``*`` (``bosun.example.*``).
        outcome: Only these outcomes (repeatable).
        since: Results submitted at or after: ISO 8601 (UTC unless it says) or an age (15m, 2h,
            7d).
        until: Results submitted before (same forms as --since).
        data: ``KEY=VALUE`` a result's data must hold (a VALUE ending in ``*``: a prefix);
            repeatable, all must hold.
        group: Only the results of this group (run) uuid.
        latest: Only the latest matching result of each testcase.
        limit: How many results at most.
        store: Results store: a SQLite path or postgresql:// URL ($BOSUN_RESULTS_STORE, else
            artifacts/results.sqlite).
    """
    filters = {}
    for item in data or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--data {item!r}: expected KEY=VALUE (e.g. project=example)")
        filters[key] = value
    results_store = ResultsStore(store, create=False)
    try:
        found = results_store.query(
            testcase=testcase,
            outcome=[o.upper() for o in outcome] if outcome else None,
            since=parse_when(since, "--since") if since else None,
            until=parse_when(until, "--until") if until else None,
            data=filters,
            group=group,
            latest=latest,
            limit=limit,
        )
    finally:
        results_store.close()
    for result in found:
        sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")
    return {"results": len(found)}
