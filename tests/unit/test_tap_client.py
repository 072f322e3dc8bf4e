"""The UWS dialogue of the TAP client against a small fake service (the boundary is HTTP).

The fake lets the tests control what a real DaCHS cannot be made to do on demand: ignore
WAIT, answer 500, report a job error, and show which requests were made.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from library.tap.client import TapClient
from library.tap.errors import TapHTTPError, TapQueryError

VOTABLE = (
    b'<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
    b'<RESOURCE type="results"><INFO name="QUERY_STATUS" value="OK"/><TABLE><FIELD name="x" '
    b'datatype="int"/><DATA><TABLEDATA><TR><TD>1</TD></TR><TR><TD>2</TD></TR></TABLEDATA></DATA>'
    b"</TABLE></RESOURCE></VOTABLE>"
)


def job_doc(job_id: str, phase: str, error: str | None = None) -> bytes:
    error_xml = (
        (f'<uws:errorSummary type="fatal"><uws:message>{error}</uws:message></uws:errorSummary>')
        if error
        else ""
    )
    return (
        '<?xml version="1.0"?><uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1">'
        f"<uws:jobId>{job_id}</uws:jobId><uws:phase>{phase}</uws:phase>"
        "<uws:executionDuration>0</uws:executionDuration>"
        f"<uws:results/>{error_xml}</uws:job>"
    ).encode()


class FakeTap:
    """/tap/sync, /tap/async and jobs that execute for `run_s` seconds after PHASE=RUN."""

    def __init__(self, run_s=0.3, honour_wait=True, fail_with=None, status=200):
        self.run_s, self.honour_wait, self.fail_with, self.status = (
            run_s,
            honour_wait,
            fail_with,
            status,
        )
        self.jobs: dict[str, float | None] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()

    def phase(self, job_id):
        started = self.jobs[job_id]
        if started is None:
            return "PENDING"
        if time.monotonic() - started < self.run_s:
            return "EXECUTING"
        return "ERROR" if self.fail_with else "COMPLETED"

    def handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body=b"", headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, method):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode()) if length else {}
                with fake.lock:
                    fake.requests.append((method, url.path, {**parse_qs(url.query), **form}))
                    fake.headers.append(dict(self.headers))
                return url.path, {**parse_qs(url.query), **form}

            def do_POST(self):
                path, args = self._record("POST")
                if fake.status != 200:
                    return self._send(fake.status, b"<html>oops</html>")
                if path == "/tap/sync":
                    return self._send(200, VOTABLE, {"Content-Type": "text/xml"})
                if path == "/tap/async":
                    job_id = f"j{len(fake.jobs)}"
                    fake.jobs[job_id] = None
                    return self._send(303, headers={"Location": f"/tap/async/{job_id}"})
                if path.endswith("/phase"):
                    job_id = path.split("/")[-2]
                    if args.get("PHASE") == ["RUN"]:
                        fake.jobs[job_id] = time.monotonic()
                    return self._send(303, headers={"Location": f"/tap/async/{job_id}"})
                self._send(404)

            def do_GET(self):
                path, args = self._record("GET")
                parts = path.split("/")
                job_id = parts[3] if len(parts) > 3 else ""
                if job_id not in fake.jobs:
                    return self._send(404)
                if path.endswith("/results/result"):
                    return self._send(200, VOTABLE, {"Content-Type": "text/xml"})
                wait = int(args.get("WAIT", ["0"])[0])
                if wait and fake.honour_wait:
                    seen, deadline = fake.phase(job_id), time.monotonic() + wait
                    while fake.phase(job_id) == seen and time.monotonic() < deadline:
                        time.sleep(0.01)
                self._send(
                    200,
                    job_doc(job_id, fake.phase(job_id), fake.fail_with),
                    {"Content-Type": "text/xml"},
                )

            def do_DELETE(self):
                path, _ = self._record("DELETE")
                fake.jobs.pop(path.split("/")[-1], None)
                self._send(303, headers={"Location": "/tap/async"})

        return Handler


@pytest.fixture
def serve():
    servers = []

    def start(fake: FakeTap) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/tap"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def polls(fake):
    return [r for r in fake.requests if r[0] == "GET" and not r[1].endswith("/result")]


def test_long_poll_returns_when_the_job_completes(serve):
    fake = FakeTap(run_s=2.0)
    url = serve(fake)
    result = TapClient(url, wait_mode="long-poll").run("SELECT 1", use_async=True)
    assert result.rows == 2 and result.job_deleted and fake.jobs == {}
    assert result.executing_s > 1.9
    # One long-poll saw EXECUTING, the next one held until COMPLETED: no busy polling.
    assert len(polls(fake)) <= 3
    waits = [r[2].get("WAIT") for r in polls(fake)]
    assert all(w is not None for w in waits)


def test_hybrid_polls_fast_at_first_then_long_polls(serve, monkeypatch):
    from library.tap import client

    monkeypatch.setattr(client, "FAST_POLL_S", 1.0)
    fake = FakeTap(run_s=2.5)
    url = serve(fake)
    result = TapClient(url).run("SELECT 1", use_async=True)
    assert result.executing_s > 2.4
    gets = polls(fake)
    assert not any("WAIT" in r[2] for r in gets[:3])
    assert "WAIT" in gets[-1][2]
    assert len(gets) < 20


def test_hybrid_gap_is_a_tenth_of_the_elapsed_time_within_bounds():
    from library.tap.client import hybrid_gap

    assert hybrid_gap(0.0) == 0.05
    assert hybrid_gap(1.2) == pytest.approx(0.12)
    assert hybrid_gap(10.0) == 0.25


def test_hybrid_polls_a_short_job_without_wait(serve):
    fake = FakeTap(run_s=1.2, honour_wait=False)
    url = serve(fake)
    result = TapClient(url).run("SELECT 1", use_async=True)
    assert result.rows == 2 and result.job_deleted and result.executing_s >= 1.2
    assert polls(fake) and not any("WAIT" in r[2] for r in polls(fake))


def test_server_ignoring_wait_gets_backoff_polls_not_a_busy_loop(serve):
    fake = FakeTap(run_s=1.5, honour_wait=False)
    url = serve(fake)
    result = TapClient(url, wait_mode="long-poll").run("SELECT 1", use_async=True)
    assert result.rows == 2 and result.job_deleted
    assert result.executing_s > 1.4
    assert 3 <= len(polls(fake)) <= 20


def test_job_error_carries_the_uws_message_and_the_job_is_deleted(serve):
    fake = FakeTap(run_s=0.1, fail_with="Table sandbox.nope does not exist")
    url = serve(fake)
    with pytest.raises(TapQueryError, match="ERROR: Table sandbox.nope does not exist"):
        TapClient(url).run("SELECT 1", use_async=True)
    assert fake.jobs == {} and any(r[0] == "DELETE" for r in fake.requests)


def test_http_error_names_status_and_url(serve):
    url = serve(FakeTap(status=503))
    with pytest.raises(TapHTTPError, match=rf"^HTTP 503 .*from {url}/sync$"):
        TapClient(url).run("SELECT 1")


def test_bearer_token_is_sent_and_never_in_the_result(serve):
    fake = FakeTap()
    url = serve(fake)
    token = "gt-secret-token-value"
    result = TapClient(url, token=token).execute("SELECT 1", use_async=True)
    assert all(h.get("Authorization") == f"Bearer {token}" for h in fake.headers)
    assert token not in repr(result.as_row())


def test_maxrec_is_sent(serve):
    fake = FakeTap()
    url = serve(fake)
    TapClient(url, max_rows=7).run("SELECT 1")
    assert fake.requests[0][2]["MAXREC"] == ["7"]


def test_a_trickling_body_ends_the_query_at_its_timeout_not_at_the_body_end():
    """A service sending its body a few bytes at a time must not hold a query past its timeout."""
    from library.tap.errors import TapTimeout

    state = {"sent_all": False, "client_left": threading.Event()}

    class Trickle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            # A declared length (no chunked encoding): the client reads towards a known end.
            self.send_header("Content-Length", "6000")
            self.end_headers()
            try:
                for _ in range(600):  # 10 bytes every 50 ms: 30 s of body at most
                    self.wfile.write(b"<!-- x -->")
                    self.wfile.flush()
                    time.sleep(0.05)
                state["sent_all"] = True
            except OSError:
                state["client_left"].set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tap"
        with pytest.raises(TapTimeout, match="while reading"):
            TapClient(url, timeout=1).run("SELECT 1")
        assert not state["sent_all"]  # the client gave up while the body was still coming
        assert state["client_left"].wait(10)
    finally:
        server.shutdown()
        server.server_close()
