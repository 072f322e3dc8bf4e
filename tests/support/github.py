"""A stand-in for GitHub's REST API, for the tests of the GitHub apps (GitHub cannot be
installed here): a local HTTP server that records every call the check-run API would
receive and answers as GitHub documents it
(https://docs.github.com/en/rest/checks/runs: ``POST /repos/{owner}/{repo}/check-runs`` -> 201
with the check run's ``id``; ``PATCH /repos/{owner}/{repo}/check-runs/{id}`` -> 200), and
answers 401 without the expected bearer token, as GitHub does. Given a GitHub App's id and
public key, it also trades a JWT signed with the app's private key for installation tokens as
GitHub documents it (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app:
``GET /repos/{owner}/{repo}/installation`` and ``POST /app/installations/{id}/access_tokens``,
both with ``Authorization: Bearer JWT``), and then accepts those tokens."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTALLATION_ID = 42


class FakeGitHub:
    def __init__(
        self, token: str | None = None, app_id: int | None = None, public_key: str | None = None
    ) -> None:
        self.tokens = {token} if token else set()
        self.app_id = app_id
        self.public_key = public_key
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
                bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if self.path.startswith("/app/") or self.path.endswith("/installation"):
                    return self._app(bearer)
                if bearer not in fake.tokens:
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

            def _app(self, bearer: str) -> None:
                import datetime as dt

                import jwt

                try:
                    claims = jwt.decode(bearer, fake.public_key, algorithms=["RS256"])
                except (jwt.PyJWTError, TypeError, ValueError):
                    return self._answer(401, {"message": "A JSON web token could not be decoded"})
                if claims.get("iss") != str(fake.app_id) or claims["exp"] - claims["iat"] > 600:
                    return self._answer(401, {"message": "Bad JWT claims"})
                if self.command == "GET" and re.fullmatch(
                    r"/repos/[^/]+/[^/]+/installation", self.path
                ):
                    return self._answer(200, {"id": INSTALLATION_ID})
                if self.command == "POST" and self.path == (
                    f"/app/installations/{INSTALLATION_ID}/access_tokens"
                ):
                    with fake._lock:
                        token = f"ghs_installation_{len(fake.tokens) + 1}"
                        fake.tokens.add(token)
                    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
                    return self._answer(
                        201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
                    )
                return self._answer(404, {"message": "Not Found"})

            do_GET = _handle  # noqa: N815
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
