"""ResultsDB's model on the shared SQL layer.

- a **group** per run: ``uuid`` (from the run dir, so recording a run again replaces it),
  ``description``, ``ref_url``, and the run's identity (project, step, presets, start, end,
  result) with its data;
- a **result** per thing judged: ``testcase`` (a dotted name), ``outcome`` (PASSED, FAILED,
  INFO, NEEDS_INSPECTION), ``ref_url``, ``note``, ``submit_time``, ``groups`` and ``data``
  (a mapping: project, step, presets, event id, git ref, measured figures...).

Data is kept twice: as JSON with the result (read back as written) and as ``result_data``
key/value rows, which is what ``--data key=value`` queries search (an index on key, value),
as ResultsDB does. ``result_latest`` keeps, per testcase, its latest result, updated in the
transaction that records one: "latest per testcase" reads one row per testcase instead of
scanning every result.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from library.config import repo_root
from library.database import Cursor, Database, is_postgres
from library.errors import UserError

OUTCOMES = ("PASSED", "FAILED", "INFO", "NEEDS_INSPECTION")
ENV_VAR = "BOSUN_RESULTS_STORE"
LEGACY_ENV_VAR = "BOSUN_HISTORY_DB"  # the run history's variable: the same store now
DEFAULT_LIMIT = 100
FEW = 10_000  # a data value held by fewer results than this is looked up by its index


def default_url() -> str:
    """$BOSUN_RESULTS_STORE, else $BOSUN_HISTORY_DB, else artifacts/results.sqlite."""
    return (
        os.environ.get(ENV_VAR)
        or os.environ.get(LEGACY_ENV_VAR)
        or str(repo_root() / "artifacts" / "results.sqlite")
    )


def _schema(dialect: str) -> list[str]:
    pk = "BIGSERIAL PRIMARY KEY" if dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    return [
        f"""CREATE TABLE IF NOT EXISTS result_groups (
            id {pk},
            uuid TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL,
            ref_url TEXT,
            root TEXT,
            project TEXT,
            step TEXT,
            presets TEXT NOT NULL,
            start TEXT,
            end_time TEXT,
            result TEXT,
            submit_time BIGINT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS result_groups_project"
        " ON result_groups (project, presets, start)",
        f"""CREATE TABLE IF NOT EXISTS results (
            id {pk},
            testcase TEXT NOT NULL,
            outcome TEXT NOT NULL,
            ref_url TEXT,
            note TEXT,
            submit_time BIGINT NOT NULL,
            group_id BIGINT REFERENCES result_groups (id) ON DELETE CASCADE,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS results_testcase ON results (testcase, submit_time)",
        "CREATE INDEX IF NOT EXISTS results_time ON results (submit_time)",
        "CREATE INDEX IF NOT EXISTS results_outcome ON results (outcome, submit_time)",
        "CREATE INDEX IF NOT EXISTS results_group ON results (group_id)",
        """CREATE TABLE IF NOT EXISTS result_data (
            result_id BIGINT NOT NULL REFERENCES results (id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS result_data_kv ON result_data (key, value, result_id)",
        # Deleting a group's data, and a result's data checked while results are scanned.
        "CREATE INDEX IF NOT EXISTS result_data_by_result ON result_data (result_id, key, value)",
        """CREATE TABLE IF NOT EXISTS result_latest (
            testcase TEXT PRIMARY KEY,
            result_id BIGINT NOT NULL,
            submit_time BIGINT NOT NULL
        )""",
    ]


def to_us(when: dt.datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


def from_us(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).isoformat(timespec="microseconds")


def parse_when(text: str, what: str = "--since") -> int:
    """A time as microseconds: ISO 8601 (``2026-11-30T18:00``, UTC unless it says), or an age
    before now (``90s``, ``15m``, ``2h``, ``7d``)."""
    text = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if match:
        scale = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return int((time.time() - float(match.group(1)) * scale) * 1_000_000)
    try:
        return to_us(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise UserError(
            f"{what} {text!r}: expected an ISO 8601 time (2026-11-30T18:00:00Z) "
            "or an age such as 90s, 15m, 2h, 7d"
        ) from None


def _flat_data(data: dict[str, Any]) -> list[tuple[str, str]]:
    """ResultsDB's key/value rows: a list gives a row per item; other values as text."""
    rows = []
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (dict, list)):
                continue  # nested structures stay in the JSON copy only
            text = json.dumps(item) if isinstance(item, bool) or item is None else str(item)
            rows.append((str(key), text[:1000]))
    return rows


@dataclass
class Result:
    testcase: str
    outcome: str
    ref_url: str | None = None
    note: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise UserError(
                f"result {self.testcase}: outcome {self.outcome!r} is not one of "
                + ", ".join(OUTCOMES)
            )


@dataclass
class Group:
    uuid: str
    description: str
    ref_url: str | None = None
    root: str | None = None
    project: str | None = None
    step: str | None = None
    presets: list[str] = field(default_factory=list)
    start: str | None = None
    end: str | None = None
    result: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class ResultsStore:
    def __init__(self, url: str | Path | None = None, *, create: bool = True) -> None:
        url = str(url or default_url())
        if not create and not is_postgres(url):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_file():
                raise UserError(
                    f"results store {path}: no such database; runs are recorded there by "
                    f"ci/run (set ${ENV_VAR} or pass --db / --store)"
                )
        self.db = Database(url, "results", durable=False)
        self.db.script(_schema(self.db.dialect))

    @property
    def url(self) -> str:
        return self.db.url

    def close(self) -> None:
        self.db.close()

    # -- writing

    def record_group(
        self, group: Group, results: list[Result], submit_time: int | None = None
    ) -> int:
        """Record a run's group and results, replacing an earlier record of the same uuid;
        returns the group's id."""
        submit = submit_time if submit_time is not None else int(time.time() * 1_000_000)
        with self.db.transaction() as cur:
            cur.execute("SELECT id FROM result_groups WHERE uuid = ?", (group.uuid,))
            old = cur.fetchone()
            touched: set[str] = set()
            if old is not None:
                cur.execute("SELECT DISTINCT testcase FROM results WHERE group_id = ?", old)
                touched.update(r[0] for r in cur.fetchall())
                # result_data goes with its results (ON DELETE CASCADE), results with the group.
                cur.execute(
                    "DELETE FROM result_data WHERE result_id IN"
                    " (SELECT id FROM results WHERE group_id = ?)",
                    old,
                )
                cur.execute("DELETE FROM results WHERE group_id = ?", old)
                cur.execute("DELETE FROM result_groups WHERE id = ?", old)
            cur.execute(
                "INSERT INTO result_groups (uuid, description, ref_url, root, project, step,"
                " presets, start, end_time, result, submit_time, data)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (
                    group.uuid,
                    group.description,
                    group.ref_url,
                    group.root,
                    group.project,
                    group.step,
                    json.dumps(list(group.presets)),
                    group.start,
                    group.end,
                    group.result,
                    submit,
                    json.dumps(group.data, default=str),
                ),
            )
            group_id = int(cur.one()[0])
            self._insert(cur, [(r, submit, group_id) for r in results])
            touched.update(r.testcase for r in results)
            self._refresh_latest(cur, touched)
        return group_id

    def record(self, rows: Iterable[tuple[Result, int, int | None]]) -> int:
        """Bulk-record (result, submit_time_us, group_id) rows in one transaction."""
        rows = list(rows)
        with self.db.transaction() as cur:
            self._insert(cur, rows)
            self._refresh_latest(cur, {r.testcase for r, _, _ in rows})
        return len(rows)

    def _insert(self, cur: Cursor, rows: list[tuple[Result, int, int | None]]) -> None:
        data_rows: list[tuple[int, str, str]] = []
        for result, submit, group_id in rows:
            cur.execute(
                "INSERT INTO results (testcase, outcome, ref_url, note, submit_time, group_id,"
                " data) VALUES (?,?,?,?,?,?,?) RETURNING id",
                (
                    result.testcase,
                    result.outcome,
                    result.ref_url,
                    result.note,
                    submit,
                    group_id,
                    json.dumps(result.data, default=str),
                ),
            )
            result_id = int(cur.one()[0])
            data_rows.extend((result_id, k, v) for k, v in _flat_data(result.data))
        if data_rows:
            cur.executemany(
                "INSERT INTO result_data (result_id, key, value) VALUES (?,?,?)", data_rows
            )

    def _refresh_latest(self, cur: Cursor, testcases: set[str]) -> None:
        for testcase in testcases:
            cur.execute("DELETE FROM result_latest WHERE testcase = ?", (testcase,))
            cur.execute(
                "INSERT INTO result_latest (testcase, result_id, submit_time)"
                " SELECT testcase, id, submit_time FROM results WHERE testcase = ?"
                " ORDER BY submit_time DESC, id DESC LIMIT 1",
                (testcase,),
            )

    def rebuild_latest(self) -> None:
        """Recompute every testcase's latest result (after rows were loaded in bulk)."""
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM result_latest")
            cur.execute(
                "INSERT INTO result_latest (testcase, result_id, submit_time)"
                " SELECT testcase, id, submit_time FROM (SELECT testcase, id, submit_time,"
                " ROW_NUMBER() OVER (PARTITION BY testcase ORDER BY submit_time DESC, id DESC)"
                " AS n FROM results) ranked WHERE n = 1"
            )

    # -- reading

    def query(
        self,
        testcase: str | None = None,
        outcome: list[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        data: dict[str, str] | None = None,
        group: str | None = None,
        latest: bool = False,
        limit: int = DEFAULT_LIMIT,
    ) -> list[dict[str, Any]]:
        """Results, newest first. TESTCASE may end in ``*`` (a prefix); OUTCOME is any of a
        list; SINCE/UNTIL bound submit_time (µs); DATA ``{key: value}`` must all hold (a value
        ending in ``*``: a prefix); LATEST keeps each testcase's newest matching result."""
        for value in outcome or []:
            if value not in OUTCOMES:
                raise UserError(f"--outcome {value!r}: use one of {', '.join(OUTCOMES)}")
        if limit < 1:
            raise UserError(f"--limit {limit}: give at least 1")
        cols = (
            "r.id, r.testcase, r.outcome, r.ref_url, r.note, r.submit_time, r.data,"
            " g.uuid AS group_uuid"
        )
        tail = " ORDER BY r.submit_time DESC, r.id DESC LIMIT ?"
        if latest:
            # Per testcase (the latest table lists them), its newest result: read through the
            # pointer when nothing else filters, else walked back from the newest until one
            # matches (an index probe per testcase, not a scan of every result).
            names, name_args = self._testcase_filter(testcase, "l")
            rest, args = self._filters(None, outcome, since, until, data, group, "x")
            if rest:
                pick = (
                    "(SELECT x.id FROM results x WHERE x.testcase = l.testcase AND "
                    + " AND ".join(rest)
                    + " ORDER BY x.submit_time DESC, x.id DESC LIMIT 1)"
                )
            else:
                pick = "l.result_id"
            sql = (
                f"SELECT {cols} FROM result_latest l JOIN results r ON r.id = {pick}"
                " LEFT JOIN result_groups g ON g.id = r.group_id"
                + (" WHERE " + " AND ".join(names) if names else "")
                + tail
            )
            args = args + name_args
        else:
            where, args = self._filters(testcase, outcome, since, until, data, group, "r")
            sql = (
                f"SELECT {cols} FROM results r LEFT JOIN result_groups g ON g.id = r.group_id"
                + (" WHERE " + " AND ".join(where) if where else "")
                + tail
            )
        rows = self.db.query(sql, (*args, int(limit)))
        out, seen = [], set()
        for row in rows:
            if latest:
                if row["testcase"] in seen:
                    continue
                seen.add(row["testcase"])
            out.append(_result_json(row))
        return out

    @staticmethod
    def _testcase_filter(testcase: str | None, a: str) -> tuple[list[str], list[Any]]:
        if not testcase:
            return [], []
        if testcase.endswith("*"):
            prefix = testcase[:-1]
            return [f"{a}.testcase >= ? AND {a}.testcase < ?"], [prefix, prefix + "\U0010ffff"]
        return [f"{a}.testcase = ?"], [testcase]

    def _filters(
        self,
        testcase: str | None,
        outcome: list[str] | None,
        since: int | None,
        until: int | None,
        data: dict[str, str] | None,
        group: str | None,
        a: str,
    ) -> tuple[list[str], list[Any]]:
        where, args = self._testcase_filter(testcase, a)
        if outcome:
            where.append(f"{a}.outcome IN ({','.join('?' * len(outcome))})")
            args += list(outcome)
        if since is not None:
            where.append(f"{a}.submit_time >= ?")
            args.append(int(since))
        if until is not None:
            where.append(f"{a}.submit_time < ?")
            args.append(int(until))
        for key, value in (data or {}).items():
            if value.endswith("*"):
                match, match_args = (
                    "d.value >= ? AND d.value < ?",
                    [
                        value[:-1],
                        value[:-1] + "\U0010ffff",
                    ],
                )
            else:
                match, match_args = "d.value = ?", [value]
            if self._few(key, match, match_args):
                # A rare value: the matching ids from the (key, value) index, a short list.
                where.append(
                    f"{a}.id IN (SELECT d.result_id FROM result_data d WHERE d.key = ? AND {match})"
                )
            else:
                # A common value: checked on each result as it is read, newest first, through
                # the (result_id, key, value) index; a query with a limit stops at its limit.
                where.append(
                    f"EXISTS (SELECT 1 FROM result_data d WHERE d.result_id = {a}.id"
                    f" AND d.key = ? AND {match})"
                )
            args += [key, *match_args]
        if group:
            where.append(f"{a}.group_id = (SELECT id FROM result_groups WHERE uuid = ?)")
            args.append(group)
        return where, args

    def _few(self, key: str, match: str, args: list[Any]) -> bool:
        """Whether fewer than FEW results hold KEY matching (counted through the index, at
        most FEW entries read)."""
        rows = self.db.query(
            f"SELECT count(*) AS n FROM (SELECT 1 FROM result_data d WHERE d.key = ? AND {match}"
            f" LIMIT {FEW}) few",
            (key, *args),
        )
        return int(rows[0]["n"]) < FEW

    def groups(
        self,
        project: str | None = None,
        presets: list[str] | None = None,
        last: int = 20,
        exclude_root: str | None = None,
    ) -> list[dict[str, Any]]:
        """Groups (runs), newest start first."""
        where, args = [], []
        if project is not None:
            where.append("project = ?")
            args.append(project)
        if presets is not None:
            where.append("presets = ?")
            args.append(json.dumps(list(presets)))
        if exclude_root is not None:
            where.append("(root IS NULL OR root != ?)")
            args.append(exclude_root)
        sql = (
            "SELECT id, uuid, description, ref_url, root, project, step, presets, start,"
            " end_time, result, submit_time, data FROM result_groups"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY start DESC, id DESC LIMIT ?"
        )
        out = []
        for row in self.db.query(sql, (*args, int(last))):
            row["presets"] = json.loads(row["presets"])
            row["data"] = json.loads(row["data"])
            row["end"] = row.pop("end_time")
            row["submit_time"] = from_us(row["submit_time"])
            out.append(row)
        return out

    def group_results(self, group_id: int) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT r.id, r.testcase, r.outcome, r.ref_url, r.note, r.submit_time, r.data,"
            " g.uuid AS group_uuid FROM results r JOIN result_groups g ON g.id = r.group_id"
            " WHERE r.group_id = ? ORDER BY r.id",
            (group_id,),
        )
        return [_result_json(r) for r in rows]


def _result_json(row: dict[str, Any]) -> dict[str, Any]:
    """A result as ResultsDB's API shows one."""
    return {
        "id": row["id"],
        "testcase": {"name": row["testcase"]},
        "outcome": row["outcome"],
        "ref_url": row["ref_url"],
        "note": row["note"],
        "submit_time": from_us(row["submit_time"]),
        "groups": [row["group_uuid"]] if row.get("group_uuid") else [],
        "data": json.loads(row["data"]),
    }
