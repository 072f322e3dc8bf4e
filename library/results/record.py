"""A finished run, as results: its group, one result for the run, one per testcase of its
``junit.xml``, one INFO result per timed operation (the figures ``report compare
--against-history`` compares with).

The run's identity comes from ``run.json``; the event that asked for it (id, type, rule, git
ref...) from ``trigger.json``, which the run queue writes into the run's dir before it starts
it. A run without ``run.json``'s exit code (killed, interrupted) is recorded as
NEEDS_INSPECTION, not guessed.
"""

from __future__ import annotations

import json
import logging
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

from library import artifacts
from library.errors import UserError
from library.junit import read_cases
from library.results.store import Group, Result, ResultsStore, to_us

log = logging.getLogger(__name__)
TRIGGER_FILE = "trigger.json"
_NAMESPACE = uuid.UUID("6f1a9d52-0b0e-4c53-9d8e-8c1d2b0b5e11")
OP_FIELDS = ("count", "failures", "success_pct", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def group_uuid(root: Path) -> str:
    """The same run dir always gives the same group (recording it again replaces it)."""
    return str(uuid.uuid5(_NAMESPACE, str(Path(root).resolve())))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stats(root: Path) -> dict[str, Any]:
    from library.report import stats as stats_mod

    try:
        return stats_mod.load(root)
    except UserError as exc:
        log.info("results: %s has no readable stats (%s)", root, exc)
        return {}


def _outcome_of(case: ET.Element) -> tuple[str, str | None]:
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            return "FAILED", el.get("message") or (el.text or "").strip()[:500] or tag
    if case.find("skipped") is not None:
        return "INFO", "skipped"
    return "PASSED", None


def results_of(root: Path) -> tuple[Group, list[Result], int | None] | None:
    """The group and results of a run dir; None when the dir holds no run to record."""
    root = Path(root).resolve()
    info = _read_json(root / artifacts.RUN_INFO)
    trigger = _read_json(root / TRIGGER_FILE)
    stats = _stats(root)
    ops = {}
    if stats:
        from library.report import stats as stats_mod

        ops = stats_mod.operations(stats)
    if not info and not ops and not trigger:
        return None
    project = info.get("project") or stats.get("project") or trigger.get("project")
    step = info.get("step") or stats.get("step") or trigger.get("step")
    presets = list(info.get("presets") or stats.get("presets") or trigger.get("presets") or [])
    exit_code = info.get("exit_code")
    if isinstance(exit_code, int):
        outcome = "PASSED" if exit_code == 0 else "FAILED"
        verdict = "success" if exit_code == 0 else f"failure (exit code {exit_code})"
    else:
        outcome, verdict = "NEEDS_INSPECTION", stats.get("result") or "unfinished"
    report = root / "report" / "index.html"
    ref_url = str(report if report.is_file() else root)
    common: dict[str, Any] = {
        "project": project,
        "step": step,
        "presets": presets,
        "run_dir": str(root),
    }
    for key in ("event_id", "event_type", "rule", "run_id", "git_ref", "git_sha", "repository"):
        if trigger.get(key) is not None:
            common[key] = trigger[key]
    for key, value in (trigger.get("data") or {}).items():
        if isinstance(value, (str, int, float, bool)) and key not in common:
            common[key] = value
    end = info.get("end") or stats.get("end")
    submit = None
    if end:
        try:
            submit = to_us(datetime.fromisoformat(str(end).replace("Z", "+00:00")))
        except ValueError:
            submit = None
    label = f"{project or '?'} {step or '?'} [{', '.join(presets) or 'no presets'}]"
    group = Group(
        uuid=group_uuid(root),
        description=label,
        ref_url=ref_url,
        root=str(root),
        project=project,
        step=step,
        presets=presets,
        start=info.get("start") or stats.get("start"),
        end=end,
        result=verdict,
        data={
            **common,
            "events": int(stats.get("events") or 0),
            "client_bound": bool(stats.get("client_bound")),
            "exit_code": exit_code,
        },
    )
    results = [
        Result(
            testcase=f"bosun.{project}.{step}",
            outcome=outcome,
            ref_url=ref_url,
            note=None if outcome == "PASSED" else verdict,
            data={**common, "exit_code": exit_code},
        )
    ]
    junit_path = root / artifacts.JUNIT
    if junit_path.is_file():
        for case in read_cases(junit_path):
            case_outcome, note = _outcome_of(case)
            name = f"{case.get('classname') or project}.{case.get('name') or '?'}"
            results.append(
                Result(
                    testcase=name,
                    outcome=case_outcome,
                    ref_url=ref_url,
                    note=note,
                    data={**common, "time_s": float(case.get("time") or 0)},
                )
            )
    for key, row in sorted(ops.items()):
        results.append(
            Result(
                testcase=f"{project}.operation.{key}",
                outcome="INFO",
                ref_url=ref_url,
                data={
                    **common,
                    "key": key,
                    "flock": str(row.get("flock") or ""),
                    "operation": str(row.get("operation") or ""),
                    **{f: row.get(f) for f in OP_FIELDS},
                },
            )
        )
    return group, results, submit


def record_run(root: str | Path, store: ResultsStore | str | Path | None = None) -> int | None:
    """Record a run dir in the results store (the default one unless given); returns the
    group id, None when the dir holds nothing to record. Recording again replaces."""
    found = results_of(Path(root))
    if found is None:
        log.info(
            "results: %s holds no run (no run.json, no timed operations); nothing recorded", root
        )
        return None
    group, results, submit = found
    own = not isinstance(store, ResultsStore)
    db = store if isinstance(store, ResultsStore) else ResultsStore(store)
    try:
        group_id = db.record_group(group, results, submit)
    finally:
        if own:
            db.close()
    log.info("results: recorded %s (%d results) in %s", root, len(results), db.db.label)
    return group_id
