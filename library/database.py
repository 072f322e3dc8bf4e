"""One small SQL layer for the stores that must survive restarts (run queue, results):
SQLite by path (the embedded default), PostgreSQL by URL (a shared deployment).

Statements are written once with ``?`` placeholders; for PostgreSQL they become ``%s``. Both
dialects share what the stores use: ``INSERT ... ON CONFLICT``, ``RETURNING``, partial
indexes. Each thread gets its own connection (sqlite3 and psycopg connections are not to be
shared between threads); every change happens in a transaction that commits or rolls back
whole.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from library.errors import UserError

PG_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(url: str | Path) -> bool:
    return str(url).startswith(PG_SCHEMES)


def safe_url(url: str | Path) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(url))


class Cursor:
    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self.raw.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        self.raw.executemany(self._sql(sql), rows)
        return self

    def fetchone(self) -> tuple | None:
        return self.raw.fetchone()

    def one(self) -> tuple:
        """The row a statement must return (a row read back in the same transaction)."""
        row = self.raw.fetchone()
        if row is None:
            raise LookupError("expected a row, the statement returned none")
        return tuple(row)

    def row(self) -> dict[str, Any]:
        return dict(zip(self.columns, self.one(), strict=True))

    def fetchall(self) -> list[tuple]:
        return self.raw.fetchall()

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount

    @property
    def columns(self) -> list[str]:
        return [d[0] for d in self.raw.description or ()]

    def dicts(self) -> list[dict[str, Any]]:
        names = self.columns
        return [dict(zip(names, row, strict=True)) for row in self.raw.fetchall()]


class Database:
    """A store's database; ``what`` names it in errors (``queue``, ``results``)."""

    def __init__(self, url: str | Path, what: str, *, durable: bool = True) -> None:
        self.url = str(url)
        self.what = what
        self.durable = durable
        self.dialect = "postgresql" if is_postgres(self.url) else "sqlite"
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({safe_url(self.url)!r})"

    @property
    def label(self) -> str:
        return f"{self.what} store {safe_url(self.url)}"

    def _connect(self) -> Any:
        if self.dialect == "postgresql":
            try:
                import psycopg
            except ImportError:
                raise UserError(
                    f"{self.label}: PostgreSQL needs psycopg (pip install 'psycopg[binary]')"
                ) from None
            try:
                return psycopg.connect(self.url, connect_timeout=10, autocommit=True)
            except psycopg.Error as exc:
                raise UserError(f"{self.label}: cannot connect: {_first_line(exc)}") from None

        path = Path(self.url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            con.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"{self.label}: cannot open: {exc}") from None
        return con

    def connection(self) -> Any:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
            with self._lock:
                self._all.append(con)
        return con

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor whose statements commit together (or not at all, on an exception)."""
        con = self.connection()
        if self.dialect == "postgresql":
            with con.transaction(), con.cursor() as cur:
                yield Cursor(cur, self.dialect)
            return
        cur = con.cursor()
        # IMMEDIATE: the write lock is taken at the start, so two writers never deadlock
        # upgrading a read lock (sqlite's SQLITE_BUSY in the middle of a transaction).
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield Cursor(cur, self.dialect)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read as dicts (no transaction of its own on SQLite: a WAL snapshot)."""
        con = self.connection()
        if self.dialect == "postgresql":
            with con.transaction(), con.cursor() as cur:
                return Cursor(cur, self.dialect).execute(sql, params).dicts()
        cur = con.cursor()
        try:
            return Cursor(cur, self.dialect).execute(sql, params).dicts()
        finally:
            cur.close()

    def script(self, statements: list[str]) -> None:
        with self.transaction() as cur:
            for statement in statements:
                cur.execute(statement)

    def close(self) -> None:
        with self._lock:
            cons, self._all = self._all, []
        for con in cons:
            with contextlib.suppress(Exception):
                con.close()
        self._local = threading.local()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
