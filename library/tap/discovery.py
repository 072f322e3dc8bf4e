"""Discovery: which tables does the service have, and which templates can run against it.

SQR-080 warns that load tests break when they rely on data holdings a deployment does not
have. Before a set runs, the service's ``TAP_SCHEMA.tables`` is read; a template that names a
table the service lacks is skipped with a note saying which table, instead of failing every
time it is drawn.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from library.errors import UserError
from library.tap.client import TapClient
from library.tap.errors import TapError

if TYPE_CHECKING:
    from library.tap.query_set import QuerySet

TABLES_ADQL = "SELECT table_name FROM TAP_SCHEMA.tables"

_FROM = re.compile(
    r"\bFROM\s+(.+?)(?=\bWHERE\b|\bGROUP\b|\bORDER\b|\bHAVING\b|\bJOIN\b|\bINNER\b|\bLEFT\b"
    r"|\bRIGHT\b|\bFULL\b|\bCROSS\b|\bNATURAL\b|\bON\b|\bUNION\b|\bEXCEPT\b|\bINTERSECT\b"
    r"|\bSELECT\b|\bFROM\b|\)|;|$)",
    re.I | re.S,
)
_JOIN = re.compile(r"\bJOIN\s+([\w.\"]+)", re.I)


def service_tables(client: TapClient) -> list[str]:
    """Table names published by the service, as TAP_SCHEMA spells them."""
    result = client.run(TABLES_ADQL, keep_table=True)
    column = result.results().to_table()["table_name"]
    return sorted(str(v) for v in column)


def referenced_tables(adql: str) -> set[str]:
    """Table names an ADQL query reads (FROM lists and JOINs; subqueries are looked into)."""
    names = set()
    for clause in _FROM.findall(adql):
        for item in clause.split(","):
            words = item.strip().split()
            if words and not words[0].startswith("("):
                names.add(words[0].strip('"'))
    names.update(m.strip('"') for m in _JOIN.findall(adql))
    return {n for n in names if n and not n.startswith("(")}


def missing_tables(adql: str, available: list[str]) -> list[str]:
    """Tables the query names that the service does not publish (case-insensitive)."""
    have = {a.lower() for a in available}
    unqualified = {a.lower().rsplit(".", 1)[-1] for a in available}
    missing = []
    for name in sorted(referenced_tables(adql)):
        low = name.lower()
        if low in have or ("." not in low and low in unqualified):
            continue
        missing.append(name)
    return missing


def apply(query_set: QuerySet, client: TapClient) -> dict[str, str]:
    """Mark the set's templates that name missing tables as skipped; returns {template: note}.

    Each template is rendered once with throw-away parameters to see its table names. A set
    whose params.yaml gives ``object_ids_query`` instead of ``object_ids`` gets its ids from
    the service here.
    """
    try:
        available = service_tables(client)
    except TapError as exc:
        raise type(exc)(f"discovery (reading TAP_SCHEMA.tables) failed: {exc}") from None
    params = query_set.params
    ids_query = params.get("object_ids_query")
    if not params.get("object_ids") and ids_query and not missing_tables(ids_query, available):
        result = client.run(ids_query, keep_table=True)
        table = result.results().to_table()
        if len(table):
            params["object_ids"] = [int(v) for v in table[table.colnames[0]]]
    rng = random.Random(0)
    notes = {}
    for name in sorted(query_set.templates):
        values = query_set.parameters(rng)
        missing = missing_tables(query_set.sketch(name, values), available)
        if missing:
            note = f"skipped: table {', '.join(missing)} not in the service's TAP_SCHEMA.tables"
        else:
            try:
                query_set.render(name, values)
                continue
            except UserError as exc:
                note = f"skipped: cannot render ({exc})"
        query_set.skip(name, note)
        notes[name] = note
    return notes


def prepare(query_set: QuerySet, client: TapClient) -> dict[str, str]:
    """Discovery, then a render of every remaining template: what a runner calls once before
    drawing queries (a set whose ids come from ``object_ids_query`` needs it to render)."""
    notes = apply(query_set, client)
    query_set.check_renders()
    return notes
