"""Run one ADQL query against a TAP service, sync or async (UWS), and time its phases.

HTTP goes through the requests session pyvo builds and results are parsed by pyvo
(``TAPResults`` over astropy's VOTable parser); the UWS dialogue is driven here rather than by
``pyvo.AsyncTAPJob.wait``, for three reasons: pyvo sleeps a fixed 1 s (growing) between
polls even on servers that support the UWS 1.1 blocking ``WAIT``, which adds up to a second to
every async query; it has no overall per-query deadline; and it cannot report when a job left
the queue. Here the wait is a chain of ``GET job?WAIT=N`` long-polls, each returning as soon as
the phase changes, with a short backoff poll only for servers that ignore ``WAIT``.

``TapClient`` is thread-safe (one HTTP session per thread). pyvo is synchronous: from asyncio,
call ``execute_async_friendly`` (or ``loop.run_in_executor``) so that queries run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import re
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from library.errors import one_line
from library.redact import register_secret
from library.tap.errors import (
    TapConnectionError,
    TapError,
    TapHTTPError,
    TapProtocolError,
    TapQueryError,
    TapResultTooLarge,
    TapTimeout,
    connection_message,
    votable_error,
)

if TYPE_CHECKING:
    from pyvo.dal import TAPResults

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
# One long-poll asks the server to hold the request at most this long; shorter than typical
# proxy idle timeouts so that a proxy never cuts a healthy wait.
LONG_POLL_MAX = 30
TERMINAL_PHASES = {"COMPLETED", "ERROR", "ABORTED"}
ACTIVE_PHASES = {"PENDING", "QUEUED", "EXECUTING", "HELD", "SUSPENDED", "UNKNOWN"}
CHUNK = 64 * 1024
WAIT_MODES = ("hybrid", "long-poll", "poll")
# Hybrid waiting: for the first FAST_POLL_S seconds, poll with a gap of 10 % of the time
# elapsed (at least 50 ms, at most 250 ms), so a short query is seen finished within
# max(50 ms, 10 %); after that, long-poll. The window bounds the extra requests a slow query
# costs the server (about 35); servers that answer WAIT on a coarse clock (DaCHS re-checks
# once a second) would otherwise add up to a second to every short query.
FIRST_POLL_S = 0.05
POLL_GROWTH = 1.3
FAST_POLL_SHARE = 0.1
FAST_POLL_MAX_S = 0.25


def hybrid_gap(elapsed_s: float) -> float:
    """Seconds to wait before the next short poll, ``elapsed_s`` into a job (hybrid mode)."""
    return min(max(FIRST_POLL_S, FAST_POLL_SHARE * elapsed_s), FAST_POLL_MAX_S)


FAST_POLL_S = 5.0


@dataclass
class QueryResult:
    """The outcome and timing of one query. Times are seconds; -1 means the phase did not occur."""

    adql: str
    mode: str  # "sync" | "async"
    start_us: int = 0
    success: bool = False
    rows: int = -1
    bytes: int = 0
    total_s: float = 0.0
    submit_s: float = -1.0
    queued_s: float = -1.0
    executing_s: float = -1.0
    fetch_s: float = -1.0
    delete_s: float = -1.0
    overflow: bool = False
    job_url: str = ""
    job_deleted: bool | None = None
    phase: str = ""  # last UWS phase seen (async)
    error_class: str = ""
    error: str = ""
    table: TAPResults | None = field(default=None, repr=False, compare=False)

    def results(self) -> TAPResults:
        """The rows of a query run with ``keep_table=True``."""
        if self.table is None:
            raise TapError(f"{self.adql[:60]!r}: the result table was not kept")
        return self.table

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("table")
        return row


class TapClient:
    """A TAP service endpoint with its limits: timeout, row cap (MAXREC), byte cap, token."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        wait_mode: str = "hybrid",
    ):
        if not url.startswith(("http://", "https://")):
            raise TapError(f"--service {url!r}: not an http(s) URL of a TAP service")
        if timeout <= 0:
            raise TapError(f"--timeout {timeout}: must be a positive number of seconds")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        if wait_mode not in WAIT_MODES:
            raise TapError(f"--wait-mode {wait_mode!r}: choose one of {', '.join(WAIT_MODES)}")
        self.wait_mode = wait_mode
        self._token = token
        if token:
            register_secret(token)
        self._local = threading.local()
        # UWS jobs whose delete failed (the service was down): deleted again by
        # ``delete_left_jobs`` once the service answers, else listed for cleanup.
        self.jobs_left: list[str] = []
        self._jobs_lock = threading.Lock()

    # --- sessions -------------------------------------------------------------------------

    def session(self):
        """This thread's HTTP session (requests sessions are not safe to share across threads)."""
        session = getattr(self._local, "session", None)
        if session is None:
            from pyvo.utils.http import create_session

            session = create_session()
            if self._token:
                session.headers["Authorization"] = f"Bearer {self._token}"
            self._local.session = session
        return session

    # --- public API -----------------------------------------------------------------------

    def run(self, adql: str, use_async: bool = False, keep_table: bool = False) -> QueryResult:
        """Run ADQL; raise a TapError subclass (one line) on failure. Always deletes async jobs."""
        result = QueryResult(adql=adql, mode="async" if use_async else "sync")
        result.start_us = time.time_ns() // 1000
        t0 = time.perf_counter()
        try:
            if use_async:
                self._run_async(result, t0, keep_table)
            else:
                self._run_sync(result, t0, keep_table)
        finally:
            result.total_s = time.perf_counter() - t0 - max(result.delete_s, 0.0)
        result.success = True
        return result

    def execute(self, adql: str, use_async: bool = False, keep_table: bool = False) -> QueryResult:
        """Like ``run`` but never raises for a query failure: the result carries the error."""
        result = QueryResult(adql=adql, mode="async" if use_async else "sync")
        try:
            return self.run(adql, use_async, keep_table)
        except TapError as exc:
            failed = getattr(exc, "result", None) or result
            failed.success = False
            failed.error_class = type(exc).__name__
            failed.error = str(exc)
            return failed

    # --- sync -----------------------------------------------------------------------------

    def _params(self, adql: str) -> dict:
        params = {"LANG": "ADQL", "REQUEST": "doQuery", "QUERY": adql}
        if self.max_rows is not None:
            params["MAXREC"] = str(self.max_rows)
        return params

    def _run_sync(self, result: QueryResult, t0: float, keep_table: bool) -> None:
        url = f"{self.url}/sync"
        response = self._request(
            "post", url, result, t0, data=self._params(result.adql), stream=True
        )
        body = self._read_body(response, url, result, t0)
        self._check_status(response, body, url, result)
        self._parse(body, url, result, keep_table)
        result.fetch_s = -1.0

    # --- async ----------------------------------------------------------------------------

    def _run_async(self, result: QueryResult, t0: float, keep_table: bool) -> None:
        create_url = f"{self.url}/async"
        response = self._request(
            "post", create_url, result, t0, data=self._params(result.adql), allow_redirects=False
        )
        job_url = response.headers.get("Location")
        if response.status_code >= 400 or not job_url:
            body = response.content
            self._check_status(response, body, create_url, result)
            raise self._fail(
                TapProtocolError(
                    f"{create_url}: no job URL in the answer (HTTP {response.status_code})"
                ),
                result,
            )
        result.job_url = urljoin(create_url, job_url)
        deleted = False
        try:
            phase_url = f"{result.job_url}/phase"
            run = self._request(
                "post", phase_url, result, t0, data={"PHASE": "RUN"}, allow_redirects=False
            )
            self._check_status(run, run.content, phase_url, result)
            t_run = time.perf_counter()
            result.submit_s = t_run - t0
            job = self._wait(result, t0, t_run)
            if job.phase != "COMPLETED":
                raise self._fail(TapQueryError(self._job_error(job, result, t0)), result)
            t_fetch = time.perf_counter()
            result_url = self._result_url(job, result)
            response = self._request("get", result_url, result, t0, stream=True)
            body = self._read_body(response, result_url, result, t0)
            self._check_status(response, body, result_url, result)
            self._parse(body, result_url, result, keep_table)
            result.fetch_s = time.perf_counter() - t_fetch
        except TapTimeout:
            # Stop the server's work before forgetting the job, then say what became of it.
            self._abort(result)
            self._delete(result)
            deleted = True
            fate = "aborted and deleted" if result.job_deleted else "aborted, NOT deleted"
            raise self._fail(
                TapTimeout(
                    f"query timed out after {self.timeout:g} s in phase {result.phase or 'PENDING'}"
                    f" (job {result.job_url} {fate})"
                ),
                result,
            ) from None
        finally:
            if not deleted:
                self._delete(result)

    def _wait(self, result: QueryResult, t0: float, t_run: float):
        """Wait until the job is terminal; fill queued_s/executing_s; TapTimeout at the deadline.

        ``long-poll``: a chain of ``GET job?WAIT=N&PHASE=P``. Servers answer those on their own
        clock (DaCHS re-checks once a second), so a short query would wait for the next tick;
        ``hybrid`` (the default) therefore polls for the first ``FAST_POLL_S`` seconds, with
        gaps of 10 % of the time elapsed, and long-polls after that. ``poll`` never sends WAIT.
        """
        phase, t_exec = "PENDING", None
        backoff = FIRST_POLL_S
        while True:
            now = time.perf_counter()
            remaining = self.timeout - (now - t0)
            if remaining <= 0:
                raise self._fail(TapTimeout(f"query timed out after {self.timeout:g} s"), result)
            long_poll = self.wait_mode == "long-poll" or (
                self.wait_mode == "hybrid" and now - t_run >= FAST_POLL_S
            )
            wait = max(1, min(int(remaining), LONG_POLL_MAX)) if long_poll else 0
            params = {"WAIT": str(wait)} if wait else {}
            if wait and phase in ("QUEUED", "EXECUTING"):
                params["PHASE"] = phase
            asked = time.perf_counter()
            response = self._request(
                "get",
                result.job_url,
                result,
                t0,
                params=params,
                read_timeout=wait + CONNECT_TIMEOUT,
            )
            self._check_status(response, response.content, result.job_url, result)
            job = self._parse_job(response.content, result)
            result.phase = job.phase
            now = time.perf_counter()
            if job.phase == "EXECUTING" and t_exec is None:
                t_exec = now
                result.queued_s = now - t_run
            if job.phase in TERMINAL_PHASES:
                if t_exec is None:
                    # Queue exit was not observed (the job went straight through): all of it is
                    # counted as execution, none as queueing.
                    t_exec = t_run
                    result.queued_s = 0.0
                result.executing_s = now - t_exec
                return job
            if job.phase not in ACTIVE_PHASES:
                raise self._fail(
                    TapProtocolError(f"{result.job_url}: unexpected UWS phase {job.phase!r}"),
                    result,
                )
            changed = job.phase != phase
            phase = job.phase
            # A server that honours WAIT holds the request until the phase changes; one that
            # answers at once with the same phase ignores WAIT, so fall back to short polls.
            if not wait or (not changed and now - asked < 0.5):
                if self.wait_mode == "hybrid" and not wait:
                    gap = hybrid_gap(now - t_run)
                else:
                    gap, backoff = backoff, min(backoff * POLL_GROWTH, 1.0)
                time.sleep(min(gap, max(0.0, self.timeout - (now - t0))))

    def _job_error(self, job, result: QueryResult, t0: float) -> str:
        message = ""
        summary = getattr(job, "errorsummary", None)
        if summary is not None and getattr(summary, "message", None) is not None:
            message = summary.message.content or ""
        if not message:
            # UWS keeps the full message in the error document (a VOTable for TAP).
            try:
                response = self._request("get", f"{result.job_url}/error", result, t0)
                message = votable_error(response.content) or one_line(response.text, 200)
            except TapError:
                message = ""
        return f"{job.phase}: {one_line(message, 300) or '(the service gave no message)'}"

    def _result_url(self, job, result: QueryResult) -> str:
        for res in getattr(job, "results", None) or []:
            if getattr(res, "id_", None) == "result" or getattr(res, "id", None) == "result":
                return res.href
        return f"{result.job_url}/results/result"

    def _abort(self, result: QueryResult) -> None:
        # A failed abort is not reported: the delete that follows says what became of the job.
        with contextlib.suppress(Exception):
            self.session().post(
                f"{result.job_url}/phase",
                data={"PHASE": "ABORT"},
                allow_redirects=False,
                timeout=(CONNECT_TIMEOUT, CONNECT_TIMEOUT),
            )

    def _delete(self, result: QueryResult) -> None:
        t = time.perf_counter()
        try:
            response = self.session().delete(
                result.job_url, allow_redirects=False, timeout=(CONNECT_TIMEOUT, CONNECT_TIMEOUT)
            )
            result.job_deleted = response.status_code < 400 or response.status_code == 404
        except Exception:  # noqa: BLE001 - reported through job_deleted, never masks the query
            result.job_deleted = False
        result.delete_s = time.perf_counter() - t
        if not result.job_deleted and result.job_url:
            with self._jobs_lock:
                self.jobs_left.append(result.job_url)

    def delete_job(self, url: str) -> bool:
        """Delete one UWS job; True when it is gone (deleted now, or already unknown)."""
        try:
            response = self.session().delete(
                url, allow_redirects=False, timeout=(CONNECT_TIMEOUT, CONNECT_TIMEOUT)
            )
        except Exception:  # noqa: BLE001 - the service is still away: try again later
            return False
        return response.status_code < 400 or response.status_code == 404

    def delete_left_jobs(self, wait_s: float = 30.0, every_s: float = 2.0) -> list[str]:
        """Delete the jobs whose delete failed, retrying for up to WAIT_S while the service is
        away; returns the URLs still on the service (and keeps them in ``jobs_left``)."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._jobs_lock:
                pending, self.jobs_left = self.jobs_left, []
            still = [url for url in pending if not self.delete_job(url)]
            with self._jobs_lock:
                self.jobs_left = still + self.jobs_left
                left = list(self.jobs_left)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(min(every_s, max(0.0, deadline - time.monotonic())))

    def _parse_job(self, body: bytes, result: QueryResult):
        from pyvo.io.uws import parse_job

        try:
            return parse_job(io.BytesIO(body))
        except Exception as exc:  # noqa: BLE001 - any parse failure is the same fault for us
            raise self._fail(
                TapProtocolError(
                    f"{result.job_url}: not a UWS job document ({one_line(exc, 120)})"
                ),
                result,
            ) from None

    # --- HTTP helpers ---------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        result: QueryResult,
        t0: float,
        *,
        read_timeout: float | None = None,
        **kwargs,
    ):
        import requests

        remaining = self.timeout - (time.perf_counter() - t0)
        if remaining <= 0:
            raise self._fail(
                TapTimeout(f"query timed out after {self.timeout:g} s ({url})"), result
            )
        read = min(remaining, read_timeout) if read_timeout else remaining
        try:
            return getattr(self.session(), method)(
                url, timeout=(min(CONNECT_TIMEOUT, remaining), max(read, 0.001)), **kwargs
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise self._fail(TapConnectionError(connection_message(exc, url)), result) from None
        except requests.exceptions.ConnectionError as exc:
            raise self._fail(TapConnectionError(connection_message(exc, url)), result) from None
        except requests.exceptions.Timeout:
            if read_timeout and time.perf_counter() - t0 < self.timeout - 0.05:
                # The deadline is still ahead: the server sat on a long-poll past its WAIT.
                wait = int(read_timeout - CONNECT_TIMEOUT)
                raise self._fail(
                    TapProtocolError(f"{url}: no answer to a {wait} s WAIT long-poll"), result
                ) from None
            raise self._fail(
                TapTimeout(f"query timed out after {self.timeout:g} s ({url})"), result
            ) from None
        except requests.exceptions.RequestException as exc:
            raise self._fail(TapConnectionError(connection_message(exc, url)), result) from None

    def _read_body(self, response, url: str, result: QueryResult, t0: float) -> bytes:
        import requests

        chunks, size = [], 0
        try:
            for chunk in _arriving(response):
                size += len(chunk)
                if size > self.max_bytes:
                    response.close()
                    raise self._fail(
                        TapResultTooLarge(
                            f"result from {url} exceeds the cap of {self.max_bytes} bytes "
                            "(raise --max-bytes or narrow the query)"
                        ),
                        result,
                    )
                if time.perf_counter() - t0 > self.timeout:
                    response.close()
                    raise self._fail(
                        TapTimeout(f"query timed out after {self.timeout:g} s while reading {url}"),
                        result,
                    )
                chunks.append(chunk)
        except requests.exceptions.Timeout:
            raise self._fail(
                TapTimeout(f"query timed out after {self.timeout:g} s while reading {url}"),
                result,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise self._fail(TapConnectionError(connection_message(exc, url)), result) from None
        result.bytes += size
        return b"".join(chunks)

    def _check_status(self, response, body: bytes, url: str, result: QueryResult) -> None:
        if response.status_code < 400:
            return
        message = votable_error(body)
        if message:
            raise self._fail(TapQueryError(message), result)
        text = f"HTTP {response.status_code} {response.reason or ''} from {url}".replace("  ", " ")
        if response.status_code in (401, 403):
            # Say why the token was refused (a missing token, a missing scope), as the service
            # or its auth front tells it.
            text += f": {_auth_reason(response, body)}"
        raise self._fail(TapHTTPError(text), result)

    def _parse(self, body: bytes, url: str, result: QueryResult, keep_table: bool) -> None:
        from pyvo.dal import DALFormatError, DALOverflowWarning, DALQueryError
        from pyvo.dal.tap import TAPResults

        message = votable_error(body)
        if message:
            raise self._fail(TapQueryError(message), result)
        from astropy.io.votable import parse as votableparse

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                table = TAPResults(votableparse(io.BytesIO(body)), url=url)
            except DALQueryError as exc:
                raise self._fail(
                    TapQueryError(one_line(exc.reason or str(exc), 300)), result
                ) from None
            except (DALFormatError, Exception) as exc:  # noqa: BLE001 - astropy raises many kinds
                raise self._fail(
                    TapProtocolError(f"{url}: not a VOTable result ({one_line(exc, 120)})"), result
                ) from None
        result.overflow = any(issubclass(w.category, DALOverflowWarning) for w in caught) or (
            str(getattr(table, "query_status", "")).upper() == "OVERFLOW"
        )
        result.rows = len(table)
        if keep_table:
            result.table = table

    @staticmethod
    def _fail(exc: TapError, result: QueryResult) -> TapError:
        exc.result = result
        return exc


def _arriving(response):
    """The body in pieces as they arrive, so that the deadline is checked between any two.

    ``iter_content(n)`` returns only once n bytes (or the end) came in: a service trickling its
    body a few bytes at a time kept a query running long past its timeout. ``read1`` returns
    whatever has arrived; each wait for more is bounded by the read timeout of the request.
    """
    import requests
    import urllib3

    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(CHUNK)
        return
    while True:
        try:
            chunk = raw.read1(CHUNK, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(exc) from None
        except urllib3.exceptions.HTTPError as exc:
            raise requests.exceptions.ConnectionError(exc) from None
        if not chunk:
            return
        yield chunk


async def execute_async_friendly(
    client: TapClient, adql: str, use_async: bool = False, executor=None
) -> QueryResult:
    """``client.execute`` from asyncio without blocking the loop (runs in a thread).

    The default executor has few threads (min(32, cores + 4)); a load of many concurrent
    queries should pass its own ``ThreadPoolExecutor(max_workers=N)``.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(client.execute, adql, use_async))


def _auth_reason(response, body: bytes) -> str:
    """Why a request was refused: WWW-Authenticate's error_description, else the body's start."""
    challenge = response.headers.get("WWW-Authenticate", "")
    match = re.search(r'error_description="([^"]*)"', challenge)
    if match:
        return match.group(1)[:200]
    first = body[:200].decode("utf-8", "replace").strip().splitlines()
    return first[0] if first and not first[0].lstrip().startswith("<") else "no reason given"
