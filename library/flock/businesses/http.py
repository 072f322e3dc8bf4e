"""HTTPLoop: one HTTP request per execution, the pure-HTTP load."""

from __future__ import annotations

import json

from library.artifacts import Operation
from library.flock.businesses.base import Business


class HTTPLoop(Business):
    async def startup(self) -> None:
        import aiohttp

        from library.redact import register_secret

        opts = self.options
        self._headers = dict(opts.headers)
        token = self.ctx.shared.token(opts.token_env)
        if token:
            register_secret(token)
            self._headers["Authorization"] = f"bearer {token}"
        self._data = None
        if opts.body is not None:
            if isinstance(opts.body, str):
                self._data = opts.body.encode()
            else:
                self._data = json.dumps(opts.body).encode()
                self._headers.setdefault("Content-Type", "application/json")
        self._timeout = aiohttp.ClientTimeout(total=opts.timeout)
        self._ok = set(opts.expect_status) if opts.expect_status else None
        self._session = self.ctx.shared.http()
        from urllib.parse import urlsplit

        self._target = urlsplit(opts.url).path or "/"

    async def execute(self) -> bool:
        opts = self.options
        with self.ctx.timed(Operation.HTTP_REQUEST, self._target):
            async with self._session.request(
                opts.method,
                opts.url,
                data=self._data,
                headers=self._headers,
                timeout=self._timeout,
            ) as response:
                await response.read()
                status = response.status
                if (status not in self._ok) if self._ok is not None else status >= 400:
                    raise HTTPStatusError(f"{opts.method} {self._target}: HTTP {status}")
        self.executions += 1
        return False


class HTTPStatusError(Exception):
    """The server answered with a status the flock does not accept."""
