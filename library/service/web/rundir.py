"""A queued run's artifact dir as the page shows it: its steps, its JUnit cases, its files,
and one file served read-only, confined to the dir (no `..`, no symlink leading out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from library import artifacts
from library.junit import read_cases

MAX_FILES = 500  # files listed per run (a scale run's events dir holds many)
MAX_CASES = 2000


class OutsideRun(Exception):
    """A path that is not a file inside the run's artifact dir."""


def confined(root: Path, relative: str) -> Path:
    """ROOT/RELATIVE, resolved, if it is a file inside ROOT; else OutsideRun."""
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise OutsideRun(relative)
    return target


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def steps(root: Path) -> list[dict[str, Any]]:
    """Each command dir of the run (``NNN__group__command``) with its status and duration,
    in order, nested dirs of a step included."""
    out = []
    for result in sorted(root.rglob(artifacts.RESULT)):
        directory = result.parent
        if directory == root:
            continue
        data = _read_json(result)
        rel = directory.relative_to(root).as_posix()
        out.append(
            {
                "dir": rel,
                "name": " ".join(filter(None, [data.get("group"), data.get("command")])) or rel,
                "status": data.get("status"),
                "duration_s": data.get("duration_s"),
                "error": data.get("error"),
                "failed": (directory / artifacts.FAILURE).is_file(),
                "log": f"{rel}/{artifacts.LOG}" if (directory / artifacts.LOG).is_file() else None,
            }
        )
        if len(out) >= MAX_FILES:
            break
    return out


def junit_cases(root: Path) -> list[dict[str, Any]]:
    path = root / artifacts.JUNIT
    if not path.is_file():
        return []
    cases = []
    for case in read_cases(path)[:MAX_CASES]:
        outcome, message = "passed", None
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = "skipped" if kind == "skipped" else "failed"
                message = (found.get("message") or found.text or "").strip()[:500] or None
                break
        cases.append(
            {
                "classname": case.get("classname"),
                "name": case.get("name"),
                "time_s": float(case.get("time") or 0),
                "outcome": outcome,
                "message": message,
            }
        )
    return cases


def files(root: Path) -> tuple[list[dict[str, Any]], bool]:
    """The run's files (path, bytes), up to MAX_FILES; and whether the list was cut."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        out.append({"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size})
        if len(out) >= MAX_FILES:
            return out, True
    return out, False


def describe(run: dict[str, Any]) -> dict[str, Any]:
    """A run of the queue with what its artifact dir holds (nothing yet for a queued one)."""
    root = Path(run["artifact_dir"]) if run.get("artifact_dir") else None
    detail: dict[str, Any] = {
        "run": run,
        "steps": [],
        "cases": [],
        "files": [],
        "files_cut": False,
        "report": None,
    }
    if root is None or not root.is_dir():
        return detail
    detail["steps"] = steps(root)
    detail["cases"] = junit_cases(root)
    detail["files"], detail["files_cut"] = files(root)
    report = root / artifacts.REPORT_DIR / artifacts.REPORT_INDEX
    if report.is_file():
        detail["report"] = f"{artifacts.REPORT_DIR}/{artifacts.REPORT_INDEX}"
    return detail
