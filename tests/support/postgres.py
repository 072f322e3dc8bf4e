"""A database of the tests' own on the machine's PostgreSQL (the one the sandbox runs for
DaCHS): a role and a database made for the test and dropped before each use, so DaCHS's
database is never touched."""

from __future__ import annotations

import subprocess

ROLE = "bosun_test"
PASSWORD = "bosun_test_pw"


def _psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-d",
            database,
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def fresh_database(name: str) -> str:
    """A new, empty database NAME owned by the test role; its URL."""
    _psql(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'; END IF; END $$;"
    )
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _psql(f"CREATE DATABASE {name} OWNER {ROLE}")
    return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
