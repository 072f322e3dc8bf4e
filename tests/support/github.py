"""A stand-in for GitHub's REST API, for the tests of the GitHub apps (GitHub cannot be
installed here): a local HTTP server that records every call the check-run API would
receive and answers as GitHub documents it
(https://docs.github.com/en/rest/checks/runs: ``POST /repos/{owner}/{repo}/check-runs`` -> 201
with the check run's ``id``; ``PATCH /repos/{owner}/{repo}/check-runs/{id}`` -> 200), and
answers 401 without the expected bearer token, as GitHub does."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeGitHub:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[dict] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                call = {
                    "method": self.command,
                    "path": self.path,
                    "body": body,
                    "auth": self.headers.get("Authorization"),
                }
                with fake._lock:
                    fake.calls.append(call)
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._answer(401, {"message": "Bad credentials"})
                if self.command == "POST" and re.fullmatch(
                    r"/repos/[^/]+/[^/]+/check-runs", self.path
                ):
                    with fake._lock:
                        fake._next_id += 1
                        check_id = fake._next_id
                    return self._answer(201, {"id": check_id, **body})
                match = re.fullmatch(r"/repos/[^/]+/[^/]+/check-runs/(\d+)", self.path)
                if self.command == "PATCH" and match:
                    return self._answer(200, {"id": int(match.group(1)), **body})
                return self._answer(404, {"message": "Not Found"})

            do_POST = _handle  # noqa: N815 - http.server's names
            do_PATCH = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
