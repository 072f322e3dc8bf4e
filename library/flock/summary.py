"""The run's summary from its artifacts: summary.json, summary.txt, a JUnit fragment, a webhook.

Everything is computed from the `events/` and `health/` Parquet files, never from in-memory
counters, so that a distributed run (several shards writing into one directory) and a single
process give the same summary by the same code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

from library import junit
from library.artifacts import Operation, ScaleRunDir
from library.events import read_events
from library.flock.businesses import main_operation
from library.flock.health import client_bound
from library.flock.models import FlockConfig
from library.redact import register_secret
from library.stats import STATS_COLUMNS, dictionary_codes, table_stats

log = logging.getLogger(__name__)
DEFAULT_MIN_SUCCESS_PCT = 95.0


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _figures(row) -> dict[str, Any]:
    """A `library.stats` row as summary.json shows it under its flock and operation."""
    out = row.as_dict()
    for key in ("flock", "operation", "key", "lifecycle"):
        out.pop(key)
    return out


def flock_figures(out_dir: Path, flocks: list[FlockConfig]) -> dict[str, dict[str, Any]]:
    """Per flock: monkeys, started, successes, failures, success % and per-operation figures,
    from the events under `out_dir` by the one rule (library/stats.py).

    Successes are the successful events of the business's main operation, failures its
    `monkey_error` events (mobu's counts). The live view's last line shows these same figures.
    """
    import numpy as np

    table = read_events(ScaleRunDir(out_dir).events, list(STATS_COLUMNS))
    by_flock: dict[str, dict[str, Any]] = {}
    for row in table_stats(table):
        by_flock.setdefault(row.flock, {})[row.operation] = row
    if table.num_rows:
        flock_codes, flock_names = dictionary_codes(table.column("flock"))
        monkey_codes, _ = dictionary_codes(table.column("monkey"))
    else:
        flock_codes, flock_names, monkey_codes = np.zeros(0, np.int64), [], np.zeros(0, np.int64)
    out: dict[str, dict[str, Any]] = {}
    for flock in flocks:
        ops = by_flock.get(flock.name, {})
        main = ops.get(main_operation(flock.business.type))
        errors = ops.get(Operation.MONKEY_ERROR)
        successes = main.successes if main else 0
        failures = errors.count if errors else 0
        total = successes + failures
        code = flock_names.index(flock.name) if flock.name in flock_names else -1
        out[flock.name] = {
            "monkeys": flock.count,
            "business": flock.business.type,
            # Distinct monkeys by counting, not sorting (np.unique sorts every row).
            "started": int(np.count_nonzero(np.bincount(monkey_codes[flock_codes == code]))),
            "successes": successes,
            "failures": failures,
            "success_pct": round(100.0 * successes / total, 2) if total else 0.0,
            "operations": {name: _figures(row) for name, row in sorted(ops.items())},
        }
    return out


def build_summary(
    out_dir: Path,
    flocks: list[FlockConfig],
    start: float,
    end: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    bound, reason = client_bound(ScaleRunDir(out_dir).health)
    summary: dict[str, Any] = {
        "start": _iso(start),
        "end": _iso(end),
        "duration_s": round(end - start, 3),
        "client_bound": bound,
        "client_bound_reason": reason,
        "flocks": flock_figures(out_dir, flocks),
    }
    if extra:
        summary.update(extra)
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """mobu's daily-report lines, one per flock."""
    day = summary["start"][:10]
    lines = []
    for name, flock in summary["flocks"].items():
        failures = flock["failures"]
        noun = "failure" if failures == 1 else "failures"
        lines.append(
            f"• *{name}*: {flock['started']} monkeys started {day} with {failures} {noun}"
            f" ({flock['success_pct']:.2f}% success)"
        )
    for name, flock in summary["flocks"].items():
        for op, fig in flock.get("operations", {}).items():
            if fig.get("behind_schedule"):
                # Less load than configured, whatever the CPU says (library/stats.py).
                lines.append(
                    f"⚠ behind schedule: {name}/{op} achieved {fig['achieved_per_s']:.1f}/s,"
                    f" {fig['achieved_pct']:.1f}% of the intended {fig['intended_per_s']:.1f}/s;"
                    f" p99 {fig['p99_ms']} ms measured, {fig['corrected_p99_ms']} ms from the"
                    " intended start"
                )
    if summary.get("client_bound"):
        lines.append(f"⚠ client-bound: {summary['client_bound_reason']}")
    for shard in summary.get("dead_shards", []):
        lines.append(f"⚠ shard {shard['shard']} died: {shard['error']}")
    return "\n".join(lines) + "\n"


def flock_failed(flock: dict[str, Any], min_success_pct: float) -> str | None:
    if flock["successes"] == 0 and flock["failures"] == 0:
        return "no operation completed"
    if flock["success_pct"] < min_success_pct:
        return (
            f"{flock['success_pct']:.2f}% success is below {min_success_pct:g}%"
            f" ({flock['failures']} failures)"
        )
    return None


def junit_xml(summary: dict[str, Any], min_success_pct: float) -> str:
    """One testcase per flock, failed when `flock_failed` says so."""
    cases = [
        junit.Case(
            "scale.run", name, summary["duration_s"], flock_failed(flock, min_success_pct), ""
        )
        for name, flock in summary["flocks"].items()
    ]
    return junit.to_string(junit.suite("scale", cases))


def write_summary(out_dir: Path, summary: dict[str, Any], min_success_pct: float) -> str:
    """summary.json (kind ``scale_run``), summary.txt and the JUnit fragment; returns the text."""
    text = summary_text(summary)
    ScaleRunDir(out_dir).write_summary(summary, text, junit_xml(summary, min_success_pct))
    return text


def post_webhook(url: str, text: str, timeout: float = 10.0) -> None:
    """Post the text as Slack-compatible JSON; a failure is logged, never fatal."""
    register_secret(url)  # Slack webhook URLs are credentials
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except Exception as exc:  # noqa: BLE001 - the run's result must not depend on a chat service
        log.warning("posting the summary to the webhook failed: %s", exc)
