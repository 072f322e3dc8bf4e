"""Read an artifact tree into columnar tables.

Any directory works: a whole `ci/run` tree, one `scale run`, one command. Events are read
column-wise with pyarrow and kept as numpy arrays; strings stay dictionary codes so that every
later grouping is an integer operation. Nothing here looks at events one row at a time.
"""

from __future__ import annotations

import contextvars
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from library import artifacts, yamlio
from library.artifacts import SummaryKind
from library.config import available_projects, project_testing_dir
from library.errors import UserError, one_line
from library.events import SPOOL_SUFFIX, encode_spools
from library.eventstore import HOUR_US, partition_start_us
from library.flock.health import read_health_file

REPORT_DIR_NAME = artifacts.REPORT_DIR
# The time range of events to read, (since_us, until_us), either end None: `report
# post_mortem --since/--until` on a standing service's events (hour partitions of
# library/eventstore.py, whose dirs outside the range are not opened).
EVENTS_RANGE: contextvars.ContextVar[tuple[int | None, int | None]] = contextvars.ContextVar(
    "bosun_report_events_range", default=(None, None)
)
# Columns the report needs; `monkey`, `business` and `shard` are left on disk to save memory.
_NUMERIC = ("start_us", "duration_us", "rows")
_CATEGORICAL = ("flock", "operation", "target", "error_class")
_HEALTH = (
    "time_us",
    "loop_lag_max_ms",
    "loop_lag_p99_ms",
    "cpu_percent",
    "rss_bytes",
    "active_monkeys",
    "shard",
)


@dataclass
class Categorical:
    """A string column as int32 codes into `categories`."""

    codes: Any
    categories: list[str]

    def code_of(self, value: str) -> int:
        try:
            return self.categories.index(value)
        except ValueError:
            return -1


@dataclass
class Events:
    """All timing events of a tree, one numpy array per column."""

    start_us: Any
    duration_us: Any
    success: Any
    rows: Any
    flock: Categorical
    operation: Categorical
    target: Categorical
    error_class: Categorical
    # Which command dir each row came from (relative path), for sweeps and per-run splits.
    source: Categorical
    # One example message per error class (the first failure seen), read from failing rows only.
    error_examples: dict[str, str] = field(default_factory=dict)
    # Schedule lag per row (actual - intended start, µs); None when no row was scheduled.
    lag_us: Any = None
    # Monkey of each row, read only for scheduled runs (per-monkey rates); else None.
    monkey: Categorical | None = None

    def __len__(self) -> int:
        return int(self.start_us.shape[0])


@dataclass
class Command:
    """One toolbox call, from its result.json."""

    path: str  # relative to the run root
    group: str
    command: str
    suffix: str
    status: str
    start: str | None
    end: str | None
    duration_s: float | None
    error: str | None
    failure_file: str | None
    log_file: str | None


@dataclass
class SweepPoint:
    path: str  # relative dir holding settings.yaml
    settings: dict[str, Any]
    finished: bool
    exit_code: int | None


@dataclass
class Run:
    """Everything the report knows about one artifact tree."""

    root: Path
    project: str | None = None
    step: str | None = None
    presets: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    has_config: bool = False
    exit_code: int | None = None
    finished: bool = False
    failures_file: str | None = None
    commands: list[Command] = field(default_factory=list)
    events: Events | None = None
    health: dict[str, Any] | None = None
    # Every summary.json, each with its "kind" (artifacts.SummaryKind) and "_path".
    summaries: list[dict[str, Any]] = field(default_factory=list)
    sweep: list[SweepPoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files that could not be read
    # From ci/run's run.json when present (it is written after the report of that run).
    run_info: dict[str, Any] | None = None
    # Step dirs of a ci/run tree (NNN__prepare, NNN__test, ...) with their status.
    steps: list[dict[str, Any]] = field(default_factory=list)

    def summaries_of(self, kind: SummaryKind) -> list[dict[str, Any]]:
        """The summaries of one kind (scale runs, TAP query sets...), in path order."""
        return [s for s in self.summaries if s.get("kind") == kind]

    @property
    def client_bound(self) -> list[str]:
        """Reasons of every scale run that marked itself client-bound."""
        out = []
        for summary in self.summaries_of(SummaryKind.SCALE_RUN):
            if summary.get("client_bound"):
                reason = summary.get("client_bound_reason") or "the load client saturated"
                out.append(f"{summary['_path']}: {reason}")
        return out

    @property
    def start_end(self) -> tuple[str | None, str | None]:
        info = self.run_info or {}
        if info.get("start") and info.get("end"):
            return str(info["start"]), str(info["end"])
        starts = [c.start for c in self.commands if c.start]
        ends = [c.end for c in self.commands if c.end]
        starts += [s["start"] for s in self.summaries if s.get("start")]
        ends += [s["end"] for s in self.summaries if s.get("end")]
        if not starts and self.events is not None and len(self.events):

            def iso(us):
                return datetime.fromtimestamp(int(us) / 1e6, UTC).isoformat(timespec="seconds")

            end_us = (self.events.start_us + self.events.duration_us).max()
            return iso(self.events.start_us.min()), iso(end_us)
        return (min(starts) if starts else None, max(ends) if ends else None)

    @property
    def result(self) -> str:
        info = self.run_info or {}
        if isinstance(info.get("exit_code"), int):
            code = info["exit_code"]
            return "success" if code == 0 else f"failure (exit code {code})"
        if self.exit_code is not None:
            return "success" if self.exit_code == 0 else f"failure (exit code {self.exit_code})"
        if any(c.status != "success" for c in self.commands) or any(
            s["status"] != "success" for s in self.steps
        ):
            return "failure"
        if self.steps:
            # A ci/run tree whose steps are over but whose exit_code is not written yet: the
            # report runs before it, so "no failure found" is all that can be said here.
            return "success"
        if self.commands:
            return "success" if self.finished else "unfinished"
        return "unknown"


def read_run(root: str | os.PathLike[str]) -> Run:
    """Parse `root`; unreadable files are listed in `Run.problems`, never raised."""
    root = Path(root)
    run = Run(root=root)
    event_files: list[Path] = []
    health_files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            # The report's own output is not input.
            dirnames[:] = [d for d in dirnames if d != REPORT_DIR_NAME]
        dirnames.sort()
        names = set(filenames)
        if here.name == artifacts.EVENTS_DIR or _events_partition(here):
            if any(f.endswith(SPOOL_SUFFIX) for f in filenames):
                filenames = _encode_spools(run, here)
            if _in_range(here):
                event_files += [here / f for f in sorted(filenames) if f.endswith(".parquet")]
            if here.name == artifacts.EVENTS_DIR:
                dirnames[:] = [d for d in dirnames if d.startswith("date=")]
            continue
        if here.name == artifacts.HEALTH_DIR:
            health_files += [here / f for f in sorted(filenames) if f.endswith(".parquet")]
            continue
        if artifacts.RESULT in names:
            _read_command(run, here)
        if artifacts.SUMMARY_JSON in names:
            _read_summary(run, here)
        if artifacts.SWEEP_SETTINGS in names and here != root:
            settings = _yaml(run, here / artifacts.SWEEP_SETTINGS)
            if isinstance(settings, dict):
                run.sweep.append(
                    SweepPoint(
                        _rel(root, here),
                        settings,
                        artifacts.FINISHED in names,
                        _int_file(here / artifacts.EXIT_CODE),
                    )
                )
    _read_root(run)
    run.events = read_events(run, event_files)
    run.health = read_health(run, health_files)
    return run


def _rel(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel if rel != "." else ""


def _json(run: Run, path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        run.problems.append(f"{_rel(run.root, path)}: {err}")
        return None


def _yaml(run: Run, path: Path) -> Any:
    try:
        return yamlio.load_file(path)
    except UserError as err:
        run.problems.append(f"{_rel(run.root, path)}: {' '.join(str(err).split())}")
        return None


def _int_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_summary(run: Run, here: Path) -> None:
    data = _json(run, here / artifacts.SUMMARY_JSON)
    if not isinstance(data, dict):
        return
    rel = _rel(run.root, here)
    kind = artifacts.summary_kind(data)
    if kind is None:
        where = f"{rel}/{artifacts.SUMMARY_JSON}".lstrip("/")
        run.problems.append(f"{where}: unknown summary kind {data.get('kind')!r}")
        return
    data["kind"], data["_path"] = str(kind), rel
    run.summaries.append(data)


def _read_command(run: Run, here: Path) -> None:
    rel = _rel(run.root, here)
    try:
        result = artifacts.CommandResult.read(here)
    except (OSError, artifacts.ContractError) as err:
        run.problems.append(f"{rel}/{artifacts.RESULT}".lstrip("/") + f": {err}")
        return
    failure = here / artifacts.FAILURE
    log = here / artifacts.LOG
    run.commands.append(
        Command(
            path=rel,
            group=result.group,
            command=result.command,
            suffix=result.suffix or "",
            status=result.status,
            start=result.start,
            end=result.end,
            duration_s=float(result.duration_s),
            error=result.error,
            failure_file=f"{rel}/{artifacts.FAILURE}".lstrip("/") if failure.exists() else None,
            log_file=f"{rel}/{artifacts.LOG}".lstrip("/") if log.exists() else None,
        )
    )


_STEP_NAMES = ("prepare", "test", "cleanup")


def _read_root(run: Run) -> None:
    root = run.root
    run.has_config = (root / artifacts.CONFIG).exists()
    presets = root / artifacts.PRESETS_APPLIED
    if presets.exists():
        try:
            text = presets.read_text()
        except OSError as err:
            run.problems.append(f"presets_applied: {err}")
            text = ""
        run.presets = [
            line.strip().lstrip("- ").strip()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    # Trees written before the snapshot had its own name hold it in the CI input's name.
    overrides = root / artifacts.OVERRIDES_APPLIED
    if not overrides.exists():
        overrides = root / artifacts.VARIABLE_OVERRIDES
    if overrides.exists():
        data = _yaml(run, overrides)
        if isinstance(data, dict):
            run.overrides = data
    run.exit_code = _int_file(root / artifacts.EXIT_CODE)
    run.finished = (root / artifacts.FINISHED).exists()
    if (root / artifacts.FAILURES).exists():
        run.failures_file = artifacts.FAILURES
    run.steps = _steps(root)
    if (root / artifacts.RUN_INFO).exists():
        info = _json(run, root / artifacts.RUN_INFO)
        if isinstance(info, dict):
            run.run_info = info
            if isinstance(info.get("presets"), list):
                run.presets = [str(p) for p in info["presets"]]
            if isinstance(info.get("overrides"), dict):
                run.overrides = info["overrides"]
            if isinstance(info.get("step_results"), list):
                by_dir = {s["dir"]: s for s in run.steps}
                for r in info["step_results"]:
                    if isinstance(r, dict) and r.get("dir") in by_dir:
                        by_dir[r["dir"]].update(
                            status=r.get("status") or "unknown",
                            error=r.get("error"),
                            duration_s=r.get("duration_s"),
                        )
    run.project, run.step = _identity(run)


def _steps(root: Path) -> list[dict[str, Any]]:
    """The step dirs of a ci/run tree, failed when a FAILURE or a failed command is inside."""
    steps = []
    for child in sorted(root.iterdir()):
        parts = child.name.split("__", 1)
        if not (
            child.is_dir() and len(parts) == 2 and parts[0].isdigit() and parts[1] in _STEP_NAMES
        ):
            continue
        failed = (child / artifacts.FAILURE).exists() or any(
            _int_file(p) not in (0, None) for p in child.glob(f"*/{artifacts.EXIT_CODE}")
        )
        steps.append(
            {
                "name": parts[1],
                "dir": child.name,
                "status": "failure" if failed else "success",
                "error": None,
                "duration_s": None,
            }
        )
    return steps


def _identity(run: Run) -> tuple[str | None, str | None]:
    """Project and step: from run.json, else recognised from the config snapshot."""
    info = run.run_info or {}
    if info.get("project"):
        return str(info["project"]), (str(info["step"]) if info.get("step") else None)
    for name in ("ci_run.yaml", "run.yaml"):
        path = run.root / name
        if path.exists():
            data = _yaml(run, path)
            if isinstance(data, dict):
                return data.get("project"), data.get("step")
    step = None
    names = [s["name"] for s in run.steps]
    if names == ["cleanup", "prepare", "test", "cleanup"]:
        step = "ci"
    elif len(names) == 1:
        step = names[0]
    elif names:
        step = " -> ".join(names)
    project = None
    if run.has_config:
        data = _yaml(run, run.root / artifacts.CONFIG)
        if isinstance(data, dict):
            project = _project_of_snapshot(data)
    return project, step


def _project_of_snapshot(data: dict[str, Any]) -> str | None:
    """The project whose config.yaml has the same presets and keys as this snapshot.

    A snapshot is the project's base config with presets and overrides applied, and those may
    only set keys that exist: its preset table is the project's own, and its keys mostly match.
    """

    def leaves(node: Any, prefix: str = "") -> set[str]:
        if isinstance(node, dict):
            out: set[str] = set()
            for k, v in node.items():
                if k != "ci_presets":
                    out |= leaves(v, f"{prefix}{k}.")
            return out
        return {prefix.rstrip(".")}

    mine = leaves(data)
    best, best_score = None, 0.0
    try:
        candidates = available_projects()
    except OSError:
        return None
    for name in candidates:
        try:
            base = yamlio.load_file(project_testing_dir(name) / "config.yaml")
        except Exception:  # noqa: BLE001 - an unreadable project is just not this one
            continue
        if not isinstance(base, dict):
            continue
        theirs = leaves(base)
        score = len(mine & theirs) / max(len(mine | theirs), 1)
        if set(base.get("ci_presets") or {}) == set(data.get("ci_presets") or {}):
            score += 1.0
        if score > best_score:
            best, best_score = name, score
    return best if best_score >= 1.5 else None


def _events_partition(here: Path) -> bool:
    """A `date=.../hour=...` dir (or its day) under an events dir."""
    if here.name.startswith("date=") and here.parent.name == artifacts.EVENTS_DIR:
        return True
    return here.name.startswith("hour=") and here.parent.parent.name == artifacts.EVENTS_DIR


def _in_range(here: Path) -> bool:
    since, until = EVENTS_RANGE.get()
    if (since is None and until is None) or not here.name.startswith("hour="):
        return True

    start = partition_start_us(here)
    if start is None:
        return True
    return (since is None or start + HOUR_US > since) and (until is None or start < until)


def _encode_spools(run: Run, here: Path) -> list[str]:
    """Chunks a killed scale run left spooled (library/events.py), encoded as the run would
    have; the directory's file names after."""
    try:
        encode_spools(here)
    except (OSError, ValueError) as err:
        run.problems.append(f"{_rel(run.root, here)}: {one_line(str(err))}")
    return sorted(os.listdir(here))


def read_events(run: Run, files: list[Path]) -> Events:
    """Every events file under the tree as one set of numpy columns.

    The row count of every file is known from its footer, so each column is allocated once
    and every file is decoded straight into its slice: no list of per-file arrays to
    concatenate (which held the whole run twice), no null-filling pass when there are no nulls.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    opened = []
    for path in files:
        try:
            pf = pq.ParquetFile(path, read_dictionary=["error"])
            present = set(pf.schema_arrow.names)
        except (OSError, pa.ArrowException) as err:
            run.problems.append(f"{_rel(run.root, path)}: {' '.join(str(err).split())}")
            continue
        missing = {"start_us", "duration_us"} - present
        if missing:
            run.problems.append(
                f"{_rel(run.root, path)}: no column {sorted(missing)[0]}; not an events file"
            )
            continue
        if pf.metadata.num_rows:
            opened.append((path, pf, present))
    total = sum(pf.metadata.num_rows for _, pf, _ in opened)
    # Scheduled runs (a lag_us column) get their monkeys read too: the intended and achieved
    # rates are per monkey. Other runs leave the column on disk.
    lagging = {path for path, pf, present in opened if "lag_us" in present and _may_lag(pf)}
    scheduled = bool(lagging)
    monkey = np.zeros(total if scheduled else 0, np.int32)
    monkeys: dict[str, int] = {}
    numeric = {name: np.empty(total, np.int64) for name in _NUMERIC}
    lag = np.zeros(total, np.int64)
    success = np.empty(total, bool)
    codes = {name: np.empty(total, np.int32) for name in _CATEGORICAL}
    merged: dict[str, dict[str, int]] = {name: {} for name in _CATEGORICAL}
    source = np.empty(total, np.int32)
    source_names: list[str] = []
    examples: dict[str, str] = {}
    has_lag = False
    pos = 0
    for path, pf, present in opened:
        wanted = [
            c
            for c in (*_NUMERIC, "lag_us", "success", *_CATEGORICAL, "monkey")
            if c in present and (c != "monkey" or scheduled) and (c != "lag_us" or path in lagging)
        ]
        try:
            table = pf.read(columns=wanted)
        except (OSError, pa.ArrowException) as err:
            run.problems.append(f"{_rel(run.root, path)}: {' '.join(str(err).split())}")
            continue
        kept = _range_rows(table)
        if kept is not None:
            table = table.filter(pa.array(kept))
        n = table.num_rows
        end = pos + n
        for name in _NUMERIC:
            _fill(
                numeric[name][pos:end],
                table[name] if name in present else None,
                -1 if name == "rows" else 0,
            )
        if path in lagging:
            _fill(lag[pos:end], table["lag_us"], 0)
            has_lag = has_lag or bool(lag[pos:end].any())
        _fill(success[pos:end], table["success"] if "success" in present else None, True)
        ok = success[pos:end]
        for name in _CATEGORICAL:
            _global_codes(
                table[name] if name in present else None, codes[name][pos:end], merged[name]
            )
        if scheduled:
            _global_codes(
                table["monkey"] if "monkey" in present else None, monkey[pos:end], monkeys
            )
        source_names.append(_rel(run.root, path.parent.parent))
        source[pos:end] = len(source_names) - 1
        if not ok.all():
            _collect_examples(pf, present, ok, examples, kept)
        pos = end
    if pos < total:  # a file that failed to read after its footer did
        numeric = {k: v[:pos] for k, v in numeric.items()}
        codes = {k: v[:pos] for k, v in codes.items()}
        lag, success, source = lag[:pos], success[:pos], source[:pos]
        monkey = monkey[:pos] if scheduled else monkey
    return Events(
        start_us=numeric["start_us"],
        duration_us=numeric["duration_us"],
        success=success,
        rows=numeric["rows"],
        flock=Categorical(codes["flock"], list(merged["flock"])),
        operation=Categorical(codes["operation"], list(merged["operation"])),
        target=Categorical(codes["target"], list(merged["target"])),
        error_class=Categorical(codes["error_class"], list(merged["error_class"])),
        source=Categorical(source, source_names),
        error_examples=examples,
        # Only scheduled runs carry a schedule lag; an all-zero column is not kept.
        lag_us=lag if has_lag else None,
        monkey=Categorical(monkey, list(monkeys)) if has_lag else None,
    )


def _may_lag(pf) -> bool:
    """False when the file's footer statistics show every lag_us is 0 (an unscheduled run):
    then neither the lag nor the monkeys need to be read."""
    index = pf.schema_arrow.get_field_index("lag_us")
    metadata = pf.metadata
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max or stats.max != 0 or stats.min != 0:
            return True
    return False


def _fill(out, column, default) -> None:
    """Write a numeric/bool column into `out` chunk by chunk, nulls as `default`."""
    import pyarrow.compute as pc

    if column is None:
        out[:] = default
        return
    at = 0
    for chunk in column.chunks:
        if chunk.null_count:
            chunk = pc.fill_null(chunk, default)
        out[at : at + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
        at += len(chunk)


def _global_codes(column, out, merged: dict[str, int]) -> None:
    """Write the codes of `column` in the run-wide dictionary `merged` (extended) into `out`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if column is None:
        out[:] = merged.setdefault("", len(merged))
        return
    at = 0
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(chunk)
        dictionary = chunk.dictionary.to_pylist()
        indices = chunk.indices
        if indices.null_count:
            dictionary.append(None)
            indices = pc.fill_null(indices, len(dictionary) - 1)
        mapping = np.fromiter(
            (merged.setdefault("" if v is None else str(v), len(merged)) for v in dictionary),
            np.int32,
            len(dictionary),
        )
        n = len(chunk)
        if len(mapping):
            np.take(mapping, indices.to_numpy(zero_copy_only=False), out=out[at : at + n])
        else:
            out[at : at + n] = 0
        at += n


def _range_rows(table):
    """Which rows of a file started inside EVENTS_RANGE (None: no range, all of them)."""
    import numpy as np

    since, until = EVENTS_RANGE.get()
    if since is None and until is None:
        return None
    start = table["start_us"].to_numpy()
    kept = np.ones(len(start), bool)
    if since is not None:
        kept &= start >= since
    if until is not None:
        kept &= start < until
    return kept


def _collect_examples(pf, present: set[str], ok, examples: dict[str, str], kept=None) -> None:
    """First message per error class of a file; only one row per class is turned into Python."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if "error" not in present:
        return
    failing = np.flatnonzero(~ok)
    if kept is not None:  # rows of the range -> rows of the file
        failing = np.flatnonzero(kept)[failing]
    cols = ["error"] + (["error_class"] if "error_class" in present else [])
    table = pf.read(columns=cols)
    if "error_class" in cols:
        column = table["error_class"].combine_chunks()
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column)
        codes = pc.fill_null(column.indices, -1).to_numpy(zero_copy_only=False)
        _, first = np.unique(codes[failing], return_index=True)
        picked = failing[first]
        classes = table["error_class"].take(pa.array(picked)).cast(pa.string()).to_pylist()
    else:
        picked = failing[:1]
        classes = [""]
    messages = table["error"].take(pa.array(picked)).to_pylist()
    for cls, message in zip(classes, messages, strict=True):
        examples.setdefault(cls or "", message or "")


def read_health(run: Run, files: list[Path]) -> dict[str, Any] | None:
    import numpy as np
    import pyarrow as pa

    parts: dict[str, list] = {name: [] for name in _HEALTH}
    for path in files:
        try:
            table = read_health_file(path)
        except (OSError, pa.ArrowException) as err:
            run.problems.append(f"{_rel(run.root, path)}: {' '.join(str(err).split())}")
            continue
        if "time_us" not in table.column_names or table.num_rows == 0:
            continue
        for name in _HEALTH:
            if name in table.column_names:
                parts[name].append(
                    table[name].to_numpy().astype(np.float64 if name != "time_us" else np.int64)
                )
            else:
                parts[name].append(np.full(table.num_rows, np.nan if name != "shard" else 0.0))
    if not parts["time_us"]:
        return None
    return {name: np.concatenate(values) for name, values in parts.items()}
