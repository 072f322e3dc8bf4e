"""What can go wrong with a TAP query, each a one-line UserError whose class names the kind.

The class name becomes the ``error_class`` of the query's timing event, so the post-mortem can
tell a rejected query from an unreachable service or a timeout.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from library.errors import UserError, one_line

if TYPE_CHECKING:
    from library.tap.client import QueryResult


class TapError(UserError):
    """Any failed TAP query: a failure (exit 1), unless the query itself was refused."""

    exit_code = 1
    # The timing of the failed query, set by the client that raises it.
    result: QueryResult | None = None


class TapQueryError(TapError):
    """The service rejected or failed the query (its own message, from QUERY_STATUS/UWS).

    The query is what was given: bad input (exit 2), like a bad option.
    """

    exit_code = 2


class TapHTTPError(TapError):
    """The service answered with an HTTP error status."""


class TapConnectionError(TapError):
    """The service could not be reached."""


class TapTimeout(TapError):
    """The query did not finish within its timeout."""


class TapResultTooLarge(TapError):
    """The result exceeded the size cap."""


class TapProtocolError(TapError):
    """The service answered something that is not valid TAP/UWS/VOTable."""


_STATUS_RE = re.compile(
    rb"<INFO[^>]*name=[\"']QUERY_STATUS[\"'][^>]*value=[\"']ERROR[\"'][^>]*>(.*?)</INFO>"
    rb"|<INFO[^>]*value=[\"']ERROR[\"'][^>]*name=[\"']QUERY_STATUS[\"'][^>]*>(.*?)</INFO>",
    re.S | re.I,
)


def votable_error(body: bytes) -> str | None:
    """The message of a VOTable error document (INFO name=QUERY_STATUS value=ERROR), if any."""
    match = _STATUS_RE.search(body[:200_000])
    if not match:
        return None
    text = (match.group(1) or match.group(2) or b"").decode("utf-8", "replace")
    return one_line(html.unescape(text), 300) or "(the service gave no message)"


def connection_message(exc: BaseException, url: str) -> str:
    """'cannot connect to URL: connection refused' rather than urllib3's nested repr."""
    text = str(exc)
    for marker, short in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not known"),
        ("No route to host", "no route to host"),
        ("timed out", "connection timed out"),
        ("Connection reset", "connection reset by the service"),
        ("Remote end closed", "the service closed the connection"),
    ):
        if marker in text:
            return f"cannot connect to TAP service {url}: {short}"
    return f"cannot connect to TAP service {url}: {one_line(text, 160)}"
