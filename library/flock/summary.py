"""The run's summary from its artifacts: summary.json, summary.txt, a JUnit fragment, a webhook.

Everything is computed from the `events/` and `health/` Parquet files, never from in-memory
counters, so that a distributed run (several shards writing into one directory) and a single
process give the same summary by the same code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from library.flock.businesses import main_operation
from library.flock.health import client_bound
from library.flock.models import FlockConfig

log = logging.getLogger(__name__)
DEFAULT_MIN_SUCCESS_PCT = 95.0


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _ops(durations_us, success) -> dict[str, Any]:
    import numpy as np

    count = int(len(durations_us))
    failures = int(count - success.sum())
    ms = durations_us / 1000.0
    q = np.percentile(ms, [50, 95, 99]) if count else [0.0, 0.0, 0.0]
    return {
        "count": count,
        "failures": failures,
        "success_pct": round(100.0 * (count - failures) / count, 2) if count else 100.0,
        "p50_ms": round(float(q[0]), 3),
        "p95_ms": round(float(q[1]), 3),
        "p99_ms": round(float(q[2]), 3),
        "max_ms": round(float(ms.max()), 3) if count else 0.0,
    }


def build_summary(
    out_dir: Path,
    flocks: list[FlockConfig],
    start: float,
    end: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    import numpy as np

    from library.events import read_events

    table = read_events(Path(out_dir) / "events")
    cols = {
        name: table.column(name).to_numpy(zero_copy_only=False) if table.num_rows else np.array([])
        for name in ("flock", "monkey", "operation", "success", "duration_us")
    }
    bound, reason = client_bound(Path(out_dir) / "health")
    summary: dict[str, Any] = {
        "start": _iso(start),
        "end": _iso(end),
        "duration_s": round(end - start, 3),
        "client_bound": bound,
        "client_bound_reason": reason,
        "flocks": {},
    }
    for flock in flocks:
        in_flock = cols["flock"] == flock.name
        ops = cols["operation"][in_flock]
        ok = cols["success"][in_flock].astype(bool)
        dur = cols["duration_us"][in_flock].astype("int64")
        main = main_operation(flock.business.type)
        operations = {
            str(op): _ops(dur[ops == op], ok[ops == op]) for op in sorted(set(ops.tolist()))
        }
        successes = int((ok & (ops == main)).sum())
        failures = int((ops == "monkey_error").sum())
        total = successes + failures
        summary["flocks"][flock.name] = {
            "monkeys": flock.count,
            "business": flock.business.type,
            "started": int(len(set(cols["monkey"][in_flock].tolist()))),
            "successes": successes,
            "failures": failures,
            "success_pct": round(100.0 * successes / total, 2) if total else 0.0,
            "operations": operations,
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
    cases = []
    failed = 0
    for name, flock in summary["flocks"].items():
        why = flock_failed(flock, min_success_pct)
        body = ""
        if why:
            failed += 1
            body = f"<failure message={quoteattr(why)}/>"
        cases.append(
            f'  <testcase classname="scale.run" name={quoteattr(name)}'
            f' time="{summary["duration_s"]}">{body}</testcase>'
        )
    return (
        f'<testsuite name="scale" tests="{len(cases)}" failures="{failed}">\n'
        + "\n".join(cases)
        + "\n</testsuite>\n"
    )


def write_summary(out_dir: Path, summary: dict[str, Any], min_success_pct: float) -> str:
    """summary.json (kind ``scale_run``), summary.txt and the JUnit fragment; returns the text."""
    from library.artifacts import ScaleRunDir

    text = summary_text(summary)
    ScaleRunDir(out_dir).write_summary(summary, text, junit_xml(summary, min_success_pct))
    return text


def post_webhook(url: str, text: str, timeout: float = 10.0) -> None:
    """Post the text as Slack-compatible JSON; a failure is logged, never fatal."""
    import urllib.request

    from library.redact import register_secret

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
