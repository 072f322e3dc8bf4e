"""The artifact contract in one place: file names, the command result, the scale-run dir.

Writers (``toolbox.invoke``, ``ci/run``, ``scale run``, the recorders) and readers (``ci/run``'s
JUnit and FAILURES, the report, sweeps) name every file through this module, so a name or a
shape changes in one place. docs/architecture.md ("The artifact tree") describes the tree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from library import env, redact
from library.redact import redact_data

if TYPE_CHECKING:
    import pyarrow as pa

    from library.events import Recorder

# ---------------------------------------------------------------------------- names

# In every toolbox command's NNN__group__command dir (written by library.toolbox.invoke).
ARGS = "args.yaml"
COMMAND = "command.sh"
LOG = "log.txt"
EXIT_CODE = "exit_code"
RESULT = "result.json"
FAILURE = "FAILURE"  # only when the command (or a Parallel block, or a step) failed

# At the root of a ci/run tree (written by library.ci and library.config).
CONFIG = "config.yaml"
CONFIG_PROVENANCE = "config_provenance.yaml"
PRESETS_APPLIED = "presets_applied"
VARIABLE_OVERRIDES = "variable_overrides.yaml"  # CI input, never written by bosun
OVERRIDES_APPLIED = "overrides_applied.yaml"  # the overrides this run applied
RUN_LOCK = "ci.lock"  # held by the ci/run writing the tree (library.rundir)
JUNIT = "junit.xml"  # also a fragment in a command dir (per flock, per notebook), merged here
FAILURES = "FAILURES"  # every FAILURE of the tree, concatenated
FINISHED = "FINISHED"
RUN_INFO = "run.json"
CI_LOG = "ci.log"
REPORT_DIR = "report"  # the post-mortem's output; never read back as input
REPORT_INDEX = "index.html"  # in REPORT_DIR, with the plots
STATS_JSON = "stats.json"  # in REPORT_DIR: what `report compare` and the history read

# In a scale run's dir (and, for events, in any command dir that timed something).
EVENTS_DIR = "events"
HEALTH_DIR = "health"
SUMMARY_JSON = "summary.json"
SUMMARY_TEXT = "summary.txt"
FLOCKS = "flocks.yaml"

# In a sweep point's dir.
SWEEP_SETTINGS = "settings.yaml"


class Operation(enum.StrEnum):
    """The ``operation`` column of timing events. Values are the strings stored on disk."""

    SPAWN_LAB = "spawn_lab"
    DELETE_LAB = "delete_lab"
    EXECUTE_CODE = "execute_code"
    NOTEBOOK = "notebook"
    CELL = "cell"
    TAP_QUERY = "tap_query"
    HTTP_REQUEST = "http_request"
    EMPTY_LOOP = "empty_loop"
    SIA_QUERY = "sia_query"
    GIT_LFS = "git_lfs"
    GIT_LFS_STEP = "git_lfs_step"
    MUSTER = "muster"
    MUSTER_STEP = "muster_step"
    # The engine's own bookkeeping rows, one set per monkey.
    MONKEY_START = "monkey_start"
    MONKEY_STOP = "monkey_stop"
    MONKEY_ERROR = "monkey_error"


LIFECYCLE_OPERATIONS = frozenset({Operation.MONKEY_START, Operation.MONKEY_STOP})


class SummaryKind(enum.StrEnum):
    """What a ``summary.json`` summarises: each kind has its own shape."""

    SCALE_RUN = "scale_run"  # library.flock.summary: per flock, per operation
    TAP_QUERY_SET = "tap_query_set"  # library.tap.runner: per query template


# ---------------------------------------------------------------------------- command result


class ContractError(ValueError):
    """An artifact file does not have the shape of the contract."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, set | tuple):
        return list(value)
    return repr(value)


@dataclass(frozen=True)
class CommandResult:
    """``result.json`` of one toolbox call: what ran, how it ended, what it returned."""

    group: str
    command: str
    suffix: str | None
    status: str  # "success" | "failure"
    start: str  # ISO 8601 UTC
    end: str
    duration_s: float
    error: str | None  # one line, redacted; None on success
    result: Any = None

    STATUSES = ("success", "failure")

    def __post_init__(self) -> None:
        # Strict: a reader must be able to trust every field without re-checking it.
        for name in ("group", "command", "start", "end"):
            if not isinstance(getattr(self, name), str):
                raise ContractError(f"{RESULT}: {name!r} must be a string")
        for name in ("suffix", "error"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ContractError(f"{RESULT}: {name!r} must be a string or null")
        if self.status not in self.STATUSES:
            raise ContractError(f"{RESULT}: 'status' must be one of {', '.join(self.STATUSES)}")
        if isinstance(self.duration_s, bool) or not isinstance(self.duration_s, int | float):
            raise ContractError(f"{RESULT}: 'duration_s' must be a number")

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, directory: Path) -> Path:
        """Write ``result.json`` into DIRECTORY (secrets masked); returns its path."""
        path = Path(directory) / RESULT
        text = json.dumps(redact_data(self.to_dict()), indent=2, default=_json_default)
        path.write_text(text + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Any) -> CommandResult:
        if not isinstance(data, dict):
            raise ContractError(f"{RESULT}: not a JSON object")
        missing = [f for f in cls.__dataclass_fields__ if f != "result" and f not in data]
        if missing:
            raise ContractError(f"{RESULT}: no {missing[0]!r}")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @classmethod
    def read(cls, directory: Path) -> CommandResult:
        """The result of the command dir DIRECTORY; OSError or ContractError when unreadable."""
        path = Path(directory) / RESULT
        try:
            data = json.loads(path.read_text())
        except ValueError as err:
            raise ContractError(f"{path}: {err}") from None
        return cls.from_dict(data)

    @classmethod
    def finished(
        cls,
        group: str,
        command: str,
        suffix: str | None,
        start: str,
        duration_s: float,
        error: str | None,
        result: Any = None,
    ) -> CommandResult:
        """The result of a call that started at START and ends now."""
        return cls(
            group=group,
            command=command,
            suffix=suffix,
            status="success" if error is None else "failure",
            start=start,
            end=_now(),
            duration_s=round(duration_s, 6),
            error=error,
            result=result,
        )


def command_results(root: Path) -> list[tuple[Path, CommandResult]]:
    """Every toolbox call under ROOT, in path order; unreadable results are left out."""
    out = []
    for path in sorted(Path(root).rglob(RESULT)):
        try:
            out.append((path.parent, CommandResult.read(path.parent)))
        except (OSError, ContractError):
            continue
    return out


def read_int(path: Path) -> int | None:
    """An ``exit_code``-style file as an int; None when missing or not a number."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- summaries


def summary_kind(data: dict[str, Any]) -> SummaryKind | None:
    """The kind of a summary.json; trees written before summaries carried one are recognised."""
    kind = data.get("kind")
    if kind is not None:
        try:
            return SummaryKind(kind)
        except ValueError:
            return None
    if isinstance(data.get("flocks"), dict):
        return SummaryKind.SCALE_RUN
    if "query_set" in data or "templates" in data:
        return SummaryKind.TAP_QUERY_SET
    return None


def write_summary_json(directory: Path, kind: SummaryKind, summary: dict[str, Any]) -> Path:
    """Write SUMMARY as ``summary.json`` with its ``kind`` first; returns the path."""
    path = Path(directory) / SUMMARY_JSON
    data = {"kind": str(kind), **{k: v for k, v in summary.items() if k != "kind"}}
    # A service URL may carry a password or a token parameter: masked like every artifact.
    path.write_text(json.dumps(redact.redact_data(data), indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------- scale run dir


@dataclass(frozen=True)
class ScaleRunDir:
    """The dir of one ``scale run``: flocks, events, engine health, summaries, JUnit fragment."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def events(self) -> Path:
        return self.path / EVENTS_DIR

    @property
    def health(self) -> Path:
        return self.path / HEALTH_DIR

    @property
    def summary_json(self) -> Path:
        return self.path / SUMMARY_JSON

    @property
    def summary_text(self) -> Path:
        return self.path / SUMMARY_TEXT

    @property
    def flocks(self) -> Path:
        return self.path / FLOCKS

    @property
    def junit(self) -> Path:
        return self.path / JUNIT

    def read_events(self) -> pa.Table:
        """Every event of the run as one Arrow table (the ``library.events`` schema)."""
        from library.events import read_events

        return read_events(self.events)

    def read_health(self) -> pa.Table | None:
        """Every engine health row (all shards) as one Arrow table; None when there is none."""
        import pyarrow as pa

        from library.flock.health import read_health_file

        files = sorted(self.health.glob("*.parquet")) if self.health.is_dir() else []
        tables = [read_health_file(f) for f in files]
        return pa.concat_tables(tables, promote_options="default") if tables else None

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` (a ``scale_run`` summary); ContractError when it is another kind."""
        data = json.loads(self.summary_json.read_text())
        if not isinstance(data, dict) or summary_kind(data) is not SummaryKind.SCALE_RUN:
            raise ContractError(f"{self.summary_json}: not a {SummaryKind.SCALE_RUN} summary")
        data.setdefault("kind", str(SummaryKind.SCALE_RUN))
        return data

    def write_summary(self, summary: dict[str, Any], text: str, junit: str) -> None:
        """The summary as JSON (kind ``scale_run``), as mobu's report lines, and as JUnit."""
        write_summary_json(self.path, SummaryKind.SCALE_RUN, summary)
        self.summary_text.write_text(text)
        self.junit.write_text(junit)


# ---------------------------------------------------------------------------- a command's files

CACHE_DIR = "_cache"  # at the top of the tree: what every command of a run may share


def write_json(name: str, data: Any) -> Path:
    """Write DATA as JSON into the current artifact dir (a command's own extra file)."""
    path = env.artifact_dir() / name
    text = json.dumps(redact.redact_data(data), indent=2, default=str)
    path.write_text(text + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def events_recorder(flock: str, business: str) -> Iterator[Recorder]:
    """A Recorder writing to the current artifact dir's ``events/``, closed (flushed) on exit."""
    from library.events import Recorder

    rec = Recorder(out_dir=env.artifact_dir() / EVENTS_DIR, flock=flock, business=business)
    try:
        yield rec
    finally:
        rec.close()


def cache_dir(name: str) -> Path:
    """``_cache/NAME`` at the top of the artifact tree, so every command of a run shares it.

    The top is ``$ARTIFACT_DIR`` as the launcher (``ci/run``, the CLI) set it; a command run
    on its own keeps its cache in its own dir.
    """
    top = os.environ.get("ARTIFACT_DIR")
    return (Path(top) if top else env.artifact_dir()) / CACHE_DIR / name
