"""UWS jobs whose delete failed while the service was away are deleted once it answers again,
or listed for cleanup. The service is a real HTTP server on 127.0.0.1 that is down, then up."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from library.tap.client import QueryResult, TapClient


class _Jobs(http.server.BaseHTTPRequestHandler):
    deleted: list[str] = []

    def do_DELETE(self):  # noqa: N802 - http.server's naming
        type(self).deleted.append(self.path)
        self.send_response(303)
        self.send_header("Location", "/tap/async")
        self.end_headers()

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port():
    return _free_port()


def _serve(port: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Jobs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _failed_delete(client: TapClient, url: str) -> None:
    result = QueryResult(adql="SELECT 1", mode="async")
    result.job_url = url
    client._delete(result)
    assert result.job_deleted is False


def test_jobs_left_by_an_outage_are_deleted_when_the_service_is_back(port):
    _Jobs.deleted = []
    client = TapClient(f"http://127.0.0.1:{port}/tap", timeout=5)
    for n in (1, 2):
        _failed_delete(client, f"http://127.0.0.1:{port}/tap/async/job{n}")
    assert len(client.jobs_left) == 2
    servers: list = []
    # The service comes back a second after the cleanup started retrying.
    timer = threading.Timer(1.0, lambda: servers.append(_serve(port)))
    timer.start()
    try:
        left = client.delete_left_jobs(wait_s=10, every_s=0.3)
    finally:
        timer.join()
        for server in servers:
            server.shutdown()
    assert left == [] and client.jobs_left == []
    assert sorted(_Jobs.deleted) == ["/tap/async/job1", "/tap/async/job2"]


def test_jobs_still_there_are_listed_for_cleanup(port, tmp_path):
    from library.tap.runner import JOBS_LEFT, _clean_up_jobs

    client = TapClient(f"http://127.0.0.1:{port}/tap", timeout=5)
    _failed_delete(client, f"http://127.0.0.1:{port}/tap/async/jobX")
    left = _clean_up_jobs(client, tmp_path, wait_s=0.5)
    assert left == [f"http://127.0.0.1:{port}/tap/async/jobX"]
    assert (tmp_path / JOBS_LEFT).read_text() == f"http://127.0.0.1:{port}/tap/async/jobX\n"
