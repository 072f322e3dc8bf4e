"""The queue's persistent state: one row per run, one row per event received.

A run is ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``. Its
``dedupe_key`` (event id, rule, run of the rule) is unique: a second delivery of the same
event queues nothing. A run found ``running`` when its executor starts again was interrupted
(the process died): it is noted in its ``notes`` and queued again, or failed once it has been
tried ``max_attempts`` times. Nothing is ever deleted by the queue.

Runs belong to a lane: the service's executor runs lane ``service``; ``trigger fire`` runs the
ones it queued in a lane of its own, so that the two never take each other's runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from library.config import repo_root
from library.database import Database
from library.errors import UserError

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
DONE = (SUCCEEDED, FAILED, CANCELLED)
ENV_VAR = "BOSUN_QUEUE_STORE"
DEFAULT_MAX_ATTEMPTS = 2


def default_url() -> str:
    """$BOSUN_QUEUE_STORE, else artifacts/queue.sqlite in the checkout."""
    return os.environ.get(ENV_VAR) or str(repo_root() / "artifacts" / "queue.sqlite")


def _schema(dialect: str) -> list[str]:
    pk = "BIGSERIAL PRIMARY KEY" if dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    real = "DOUBLE PRECISION" if dialect == "postgresql" else "REAL"
    return [
        f"""CREATE TABLE IF NOT EXISTS queue_events (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            fields TEXT NOT NULL,
            received {real} NOT NULL,
            source TEXT NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS queue_runs (
            id {pk},
            dedupe_key TEXT NOT NULL UNIQUE,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            rule TEXT NOT NULL,
            project TEXT NOT NULL,
            step TEXT NOT NULL,
            presets TEXT NOT NULL,
            vars TEXT NOT NULL,
            data TEXT NOT NULL,
            lane TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            created {real} NOT NULL,
            started {real},
            finished {real},
            exit_code INTEGER,
            artifact_dir TEXT,
            pid INTEGER,
            owner TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            notes TEXT NOT NULL DEFAULT '[]',
            timing TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS queue_runs_next ON queue_runs (lane, id) "
        "WHERE state = 'queued'",
        "CREATE INDEX IF NOT EXISTS queue_runs_state ON queue_runs (state, id)",
        "CREATE INDEX IF NOT EXISTS queue_runs_event ON queue_runs (event_id)",
    ]


_JSON = ("presets", "vars", "data", "notes", "timing")


@dataclass
class QueuedRun:
    id: int
    dedupe_key: str
    event_id: str
    event_type: str
    rule: str
    project: str
    step: str
    presets: list[str]
    vars: dict[str, Any]
    data: dict[str, Any]
    lane: str
    state: str
    attempts: int
    max_attempts: int
    created: float
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    artifact_dir: str | None = None
    pid: int | None = None
    owner: str | None = None
    cancel_requested: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    # Where the executor's time went for this run (ms), and the process's own (s).
    timing: dict[str, float] | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> QueuedRun:
        values = dict(row)
        for key in _JSON:
            raw = values.get(key)
            values[key] = json.loads(raw) if raw is not None else None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["cancel_requested"] = bool(self.cancel_requested)
        for key in ("created", "started", "finished"):
            out[key] = _iso(out[key])
        return out


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def host_owner(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the executor process named OWNER (host:pid) still lives (other hosts: assumed)."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class QueueStore:
    def __init__(self, url: str | Path | None = None) -> None:
        self.db = Database(url or default_url(), "queue")
        self.db.script(_schema(self.db.dialect))
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since a store was made (the store is never rebuilt: nothing lost)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM queue_runs LIMIT 0")
            columns = {c.lower() for c in cur.columns}
        if "timing" not in columns:
            self.db.script(["ALTER TABLE queue_runs ADD COLUMN timing TEXT"])

    @property
    def url(self) -> str:
        return self.db.url

    def close(self) -> None:
        self.db.close()

    # -- events and runs in

    def record_event(self, event_id: str, type_: str, fields: dict[str, Any], source: str) -> bool:
        """Remember an event; False when it was seen before (a duplicate delivery)."""
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO queue_events (id, type, fields, received, source) VALUES (?,?,?,?,?)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                (event_id, type_, json.dumps(fields, default=str), time.time(), source),
            )
            return cur.fetchone() is not None

    def event(self, event_id: str) -> dict[str, Any] | None:
        rows = self.db.query("SELECT * FROM queue_events WHERE id = ?", (event_id,))
        if not rows:
            return None
        row = rows[0]
        row["fields"] = json.loads(row["fields"])
        row["received"] = _iso(row["received"])
        return row

    def enqueue(
        self,
        requests: list[Any],
        lane: str,
        data: dict[str, Any] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> list[tuple[QueuedRun, bool]]:
        """Queue RunRequests in one transaction; each with whether it is new (False: the
        same run was queued before, by an earlier delivery of the event)."""
        out: list[tuple[QueuedRun, bool]] = []
        now = time.time()
        with self.db.transaction() as cur:
            for req in requests:
                extra = {**(data or {}), **getattr(req, "data", {})}
                cur.execute(
                    "INSERT INTO queue_runs (dedupe_key, event_id, event_type, rule, project,"
                    " step, presets, vars, data, lane, state, max_attempts, created)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (dedupe_key) DO NOTHING"
                    " RETURNING id",
                    (
                        req.dedupe_key,
                        req.event_id,
                        req.event_type,
                        req.rule,
                        req.project,
                        req.step,
                        json.dumps(list(req.presets)),
                        json.dumps(req.vars, default=str),
                        json.dumps(extra, default=str),
                        lane,
                        QUEUED,
                        max_attempts,
                        now,
                    ),
                )
                created = cur.fetchone() is not None
                cur.execute("SELECT * FROM queue_runs WHERE dedupe_key = ?", (req.dedupe_key,))
                row = cur.row()
                out.append((QueuedRun.from_row(row), created))
        return out

    # -- the executor's side

    def claim(self, lane: str, owner: str, artifacts_root: Path) -> QueuedRun | None:
        """Take the oldest queued run of LANE: running, owned by OWNER, its dir assigned."""
        lock = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else ""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id, project, step, attempts FROM queue_runs"
                f" WHERE state = 'queued' AND lane = ? ORDER BY id LIMIT 1{lock}",
                (lane,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            run_id, project, step, attempts = row
            name = f"{run_id:06d}__{project}__{step}"
            if attempts:
                name += f"__attempt{attempts + 1}"
            cur.execute(
                "UPDATE queue_runs SET state = 'running', started = ?, owner = ?, pid = NULL,"
                " attempts = attempts + 1, artifact_dir = ? WHERE id = ?",
                (time.time(), owner, str(Path(artifacts_root) / name), run_id),
            )
            cur.execute("SELECT * FROM queue_runs WHERE id = ?", (run_id,))
            return QueuedRun.from_row(cur.row())

    def set_pid(self, run_id: int, pid: int | None) -> None:
        """The run's process exists: its pid, and ``started`` becomes the time it started."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE queue_runs SET pid = ?, started = ? WHERE id = ?",
                (pid, time.time(), run_id),
            )

    def update_data(self, run_id: int, patch: dict[str, Any]) -> QueuedRun:
        """Add keys to a run's data (a reporter's check run id...)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT data FROM queue_runs WHERE id = ?", (run_id,))
            data = {**json.loads(cur.one()[0]), **patch}
            cur.execute(
                "UPDATE queue_runs SET data = ? WHERE id = ?",
                (json.dumps(data, default=str), run_id),
            )
        return self.get(run_id)

    def finish(
        self,
        run_id: int,
        state: str,
        exit_code: int | None,
        error: str | None,
        timing: dict[str, float] | None = None,
    ) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE queue_runs SET state = ?, exit_code = ?, error = ?, finished = ?,"
                " pid = NULL, timing = ? WHERE id = ? AND state = 'running'",
                (state, exit_code, error, time.time(), json.dumps(timing), run_id),
            )

    def requeue(self, run_id: int, note: str) -> QueuedRun:
        """A running run that did not finish (its executor stopped): queued again, or failed
        once it has had its attempts; the reason is kept in its notes either way."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT attempts, max_attempts, notes FROM queue_runs WHERE id = ?", (run_id,)
            )
            attempts, max_attempts, notes = cur.one()
            notes = [*json.loads(notes), note]
            if attempts < max_attempts:
                cur.execute(
                    "UPDATE queue_runs SET state = 'queued', pid = NULL, owner = NULL,"
                    " notes = ? WHERE id = ?",
                    (json.dumps(notes), run_id),
                )
            else:
                cur.execute(
                    "UPDATE queue_runs SET state = 'failed', pid = NULL, finished = ?,"
                    " error = ?, notes = ? WHERE id = ?",
                    (time.time(), f"{note}; no attempt left", json.dumps(notes), run_id),
                )
            cur.execute("SELECT * FROM queue_runs WHERE id = ?", (run_id,))
            return QueuedRun.from_row(cur.row())

    def finish_interrupted(self, run_id: int, note: str) -> QueuedRun:
        """A running run whose executor is gone and will not come back: failed, noted."""
        return self._fail(run_id, note, RUNNING)

    def fail_queued(self, run_id: int, note: str) -> QueuedRun:
        return self._fail(run_id, note, QUEUED)

    def _fail(self, run_id: int, note: str, state: str) -> QueuedRun:
        with self.db.transaction() as cur:
            cur.execute("SELECT notes FROM queue_runs WHERE id = ?", (run_id,))
            notes = json.dumps([*json.loads(cur.one()[0]), note])
            cur.execute(
                "UPDATE queue_runs SET state = 'failed', pid = NULL, finished = ?, error = ?,"
                " notes = ? WHERE id = ? AND state = ?",
                (time.time(), note, notes, run_id, state),
            )
        return self.get(run_id)

    def orphans(self, lane_prefix: str) -> list[QueuedRun]:
        """Running runs of lanes starting with LANE_PREFIX whose executor process is gone."""
        rows = self.db.query(
            "SELECT * FROM queue_runs WHERE state = 'running' AND lane LIKE ? ORDER BY id",
            (lane_prefix + "%",),
        )
        return [r for r in map(QueuedRun.from_row, rows) if not owner_alive(r.owner)]

    def cancel_requested(self, ids: list[int]) -> list[int]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.db.query(
            f"SELECT id FROM queue_runs WHERE cancel_requested = 1 AND id IN ({marks})", ids
        )
        return [r["id"] for r in rows]

    # -- list, inspect, cancel

    def get(self, run_id: int) -> QueuedRun:
        rows = self.db.query("SELECT * FROM queue_runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunNotFound(run_id)
        return QueuedRun.from_row(rows[0])

    def list(
        self,
        state: str | None = None,
        event_id: str | None = None,
        limit: int = 100,
        lane: str | None = None,
    ) -> list[QueuedRun]:
        where, args = [], []
        if state is not None:
            if state not in STATES:
                raise UserError(f"--state {state!r}: use one of {', '.join(STATES)}")
            where.append("state = ?")
            args.append(state)
        if event_id is not None:
            where.append("event_id = ?")
            args.append(event_id)
        if lane is not None:
            where.append("lane = ?")
            args.append(lane)
        sql = "SELECT * FROM queue_runs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.query(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit)))
        return [QueuedRun.from_row(r) for r in rows]

    def count(self, state: str, lane: str) -> int:
        """How many runs of LANE are in STATE (the queue's length, for /summary)."""
        rows = self.db.query(
            "SELECT count(*) AS n FROM queue_runs WHERE state = ? AND lane = ?", (state, lane)
        )
        return int(rows[0]["n"])

    def counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT state, count(*) AS n FROM queue_runs GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}

    def cancel(self, run_id: int, who: str = "") -> QueuedRun:
        """Cancel a run: a queued one at once, a running one by its executor (it is asked
        here and stops the process); a finished run cannot be cancelled (Conflict)."""
        note = f"cancelled by {who}" if who else "cancelled"
        with self.db.transaction() as cur:
            cur.execute("SELECT state, notes FROM queue_runs WHERE id = ?", (run_id,))
            row = cur.fetchone()
            if row is None:
                raise RunNotFound(run_id)
            state, notes = row
            notes = json.dumps([*json.loads(notes), note])
            if state == QUEUED:
                cur.execute(
                    "UPDATE queue_runs SET state = 'cancelled', finished = ?, notes = ?,"
                    " cancel_requested = 1 WHERE id = ?",
                    (time.time(), notes, run_id),
                )
            elif state == RUNNING:
                cur.execute(
                    "UPDATE queue_runs SET cancel_requested = 1, notes = ? WHERE id = ?",
                    (notes, run_id),
                )
            else:
                raise RunFinished(run_id, state)
        return self.get(run_id)


class RunNotFound(UserError):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"run {run_id}: no such run in the queue")
        self.run_id = run_id


class RunFinished(UserError):
    def __init__(self, run_id: int, state: str) -> None:
        super().__init__(f"run {run_id} is already {state}: only queued or running runs cancel")
        self.state = state
