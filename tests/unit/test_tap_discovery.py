"""Which tables a query reads, and which of them a service lacks."""

from __future__ import annotations

import pytest

from library.tap.discovery import missing_tables, referenced_tables
from library.tap.errors import connection_message, votable_error

AVAILABLE = ["sandbox.objects", "sandbox.sources", "tap_schema.tables", "tap_schema.columns"]


@pytest.mark.parametrize(
    ("adql", "tables"),
    [
        ("SELECT * FROM sandbox.objects WHERE ra > 1", {"sandbox.objects"}),
        (
            "SELECT a.x FROM sandbox.objects AS a JOIN sandbox.sources AS s ON a.id = s.id",
            {"sandbox.objects", "sandbox.sources"},
        ),
        ("SELECT 1 FROM dp2.Object o1, dp2.Object o2 WHERE o1.id <> o2.id", {"dp2.Object"}),
        ("select table_name from TAP_SCHEMA.tables", {"TAP_SCHEMA.tables"}),
        ("SELECT * FROM t1 LEFT OUTER JOIN t2 ON t1.a = t2.a GROUP BY x", {"t1", "t2"}),
        ("SELECT * FROM (SELECT id FROM inner_t) AS sub", {"inner_t"}),
        ('SELECT * FROM "sandbox.objects"\nORDER BY 1', {"sandbox.objects"}),
    ],
)
def test_referenced_tables(adql, tables):
    assert referenced_tables(adql) == tables


def test_missing_tables_is_case_insensitive_and_accepts_unqualified_names():
    assert missing_tables("SELECT * FROM SANDBOX.Objects", AVAILABLE) == []
    assert missing_tables("SELECT * FROM objects", AVAILABLE) == []
    assert missing_tables("SELECT * FROM TAP_SCHEMA.Tables", AVAILABLE) == []
    assert missing_tables(
        "SELECT * FROM dp02_dc2_catalogs.Object AS o JOIN sandbox.sources AS s ON o.a = s.a",
        AVAILABLE,
    ) == ["dp02_dc2_catalogs.Object"]


def test_votable_error_message_is_one_line():
    body = (
        b"<?xml version='1.0'?><VOTABLE><RESOURCE type=\"results\">"
        b'<INFO name="QUERY_STATUS" value="ERROR">Could not parse\n  your query: '
        b"Expected &quot;SELECT&quot;</INFO></RESOURCE></VOTABLE>"
    )
    assert votable_error(body) == 'Could not parse your query: Expected "SELECT"'
    ok = b'<VOTABLE><RESOURCE><INFO name="QUERY_STATUS" value="OK"/></RESOURCE></VOTABLE>'
    assert votable_error(ok) is None
    reversed_attrs = b'<INFO value="ERROR" name="QUERY_STATUS">boom</INFO>'
    assert votable_error(reversed_attrs) == "boom"


def test_connection_message_is_short():
    exc = ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /tap/sync "
        "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to "
        "establish a new connection: [Errno 111] Connection refused'))"
    )
    assert connection_message(exc, "http://127.0.0.1:1/tap/sync") == (
        "cannot connect to TAP service http://127.0.0.1:1/tap/sync: connection refused"
    )
