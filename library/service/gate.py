"""The door of the service, before any route: request bodies bounded (413), callers
identified from their bearer token (401), and changes refused without an auth file (403).

A pure ASGI middleware, so that a body is never read past its limit and an anonymous change
is refused before its body is parsed. The route then checks the finer scope (which flock)
with the identity left in ``scope["state"]["identity"]``.
"""

from __future__ import annotations

import json

from library.service.auth import Authenticator, AuthError

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def _error(status: int, message: str, kind: str, headers: list | None = None):
    body = json.dumps({"detail": [{"msg": message, "type": kind}]}).encode()
    return (
        status,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ],
        body,
    )


class Gate:
    def __init__(
        self,
        app,
        auth: Authenticator,
        max_body_bytes: int,
        prefix: str,
        exempt: tuple = (),
        public: tuple = (),
    ) -> None:
        self.app = app
        self.exempt = exempt
        self.public = public  # compiled patterns of paths read without a token
        self.auth = auth
        self.max_body = max_body_bytes
        self.prefix = prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method = scope["method"]
        headers = dict(scope.get("headers") or [])
        try:
            who = self.auth.identify(_header(headers, b"authorization"))
            if method in READ_METHODS:
                if not any(p.fullmatch(scope["path"]) for p in self.public):
                    self.auth.check_read(who)
            elif scope["path"].startswith(self.prefix + "/") and not any(
                scope["path"] == p or scope["path"].startswith(p + "/") for p in self.exempt
            ):
                # Every change needs a token with some power to change; which flock it may
                # change is the route's check.
                self.auth.check_change(who, None, method)
        except AuthError as exc:
            extra = [(b"www-authenticate", b'Bearer realm="bosun"')] if exc.status == 401 else []
            kind = "unauthorized" if exc.status == 401 else "forbidden"
            return await _send(send, *_error(exc.status, exc.message, kind, extra))
        scope.setdefault("state", {})["identity"] = who
        if method in READ_METHODS:
            return await self.app(scope, receive, send)
        length = _header(headers, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _send(send, *self._too_large())
        # Read the body up to the limit before the route sees it (chunked bodies too).
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await _send(send, *self._too_large())
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _too_large(self):
        return _error(
            413,
            f"request body larger than {self.max_body} bytes (service.max_body_bytes)",
            "body_too_large",
        )


def _header(headers: dict, name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


async def _send(send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
