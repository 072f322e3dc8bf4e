"""One SIA v2 search, timed, through pyvo's SIA2Service (the client mobu uses).

The service URL is the SIA base URL (what service discovery lists); pyvo reads its VOSI
capabilities once to find the query endpoint. Requests carry ``Authorization: Bearer TOKEN``
when a token is given, on every URL of the service, as mobu's pyvo AuthSession does.
One ``SiaClient`` serves one monkey, one search at a time (pyvo's service holds one requests
session); from asyncio, run `connect` and `search` in a thread, `connect` first so that the
capabilities request is not timed as part of the first search.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from library.errors import UserError, one_line
from library.redact import register_secret
from library.sia.params import SIAQuery

if TYPE_CHECKING:
    import requests
    from pyvo.dal import SIA2Service

DEFAULT_TIMEOUT = 300.0


@dataclass
class SearchResult:
    query: str
    start_us: int = 0
    total_s: float = 0.0
    success: bool = False
    rows: int = -1
    error_class: str = ""
    error: str = ""


class SiaClient:
    def __init__(self, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"SIA service {url!r}: not an http(s) URL")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        if token:
            register_secret(token)
        self._service = None

    def connect(self) -> SIA2Service:
        """The pyvo SIA2Service (reads the service's capabilities on first use)."""
        service = self._service
        if service is None:
            import pyvo
            from pyvo.utils.http import create_session

            session = create_session()
            if self._token:
                session.headers["Authorization"] = f"Bearer {self._token}"
            # pyvo's requests carry no timeout of their own; bound every one of them.
            session.request = _with_timeout(session.request, self.timeout)
            with warnings.catch_warnings():
                # DaCHS's capabilities use SIA elements pyvo's parser does not model.
                warnings.simplefilter("ignore")
                service = pyvo.dal.SIA2Service(self.url, session=session)
            self._service = service
        return service

    def search(self, query: SIAQuery) -> SearchResult:
        """Run QUERY; failures are returned (error class and one line), never raised."""
        from astropy.time import Time

        result = SearchResult(query=str(query), start_us=time.time_ns() // 1000)
        started = time.perf_counter()
        try:
            service = self.connect()
            times = tuple(Time(t, format="mjd") for t in query.time)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = service.search(pos=query.pos, time=times)
            result.rows = len(found)
            result.success = True
        except Exception as exc:  # every failure is data for the event row
            result.error_class = type(exc).__name__
            result.error = one_line(str(exc))[:200]
        result.total_s = time.perf_counter() - started
        return result


def _with_timeout(
    request: Callable[..., requests.Response], timeout: float
) -> Callable[..., requests.Response]:
    def bounded(method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", timeout)
        return request(method, url, **kwargs)

    return bounded
