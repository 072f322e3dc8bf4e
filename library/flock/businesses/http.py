"""HTTPLoop: one HTTP request per execution, the pure-HTTP load.

The request is the whole execution, so everything around it is work the engine adds to each
request: it is kept to two clock reads and one `Channel.ok` (the event's strings are coded
once at startup), and the request's arguments (URL parsed, headers, timeout) are built once.
"""

from __future__ import annotations

import json
import time
from typing import Any

from library.artifacts import Operation
from library.flock.businesses.base import Business
from library.flock.options import HTTPLoopOptions
from library.redact import register_secret


class HTTPLoop(Business[HTTPLoopOptions]):
    async def startup(self) -> None:
        import aiohttp
        from yarl import URL

        opts = self.options
        headers = dict(opts.headers)
        token = self.ctx.shared.token(opts.token_env)
        if token:
            register_secret(token)
            headers["Authorization"] = f"bearer {token}"
        data = None
        if opts.body is not None:
            if isinstance(opts.body, str):
                data = opts.body.encode()
            else:
                data = json.dumps(opts.body).encode()
                headers.setdefault("Content-Type", "application/json")
        kwargs: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=opts.timeout)}
        if headers:
            kwargs["headers"] = headers
        if data is not None:
            kwargs["data"] = data
        self._kwargs = kwargs
        self._method = opts.method
        self._url = URL(opts.url)
        self._ok = frozenset(opts.expect_status) if opts.expect_status else None
        self._request = self.ctx.shared.http().request
        self._target = self._url.path or "/"
        self._channel = self.ctx.recorder.channel(
            Operation.HTTP_REQUEST,
            self.ctx.username,
            self._target,
            flock=self.ctx.flock,
            business=self.ctx.business,
        )
        # Event start times are wall-clock µs; one perf_counter read gives both them and the
        # duration (the offset is taken once per monkey).
        self._wall_offset_ns = time.time_ns() - time.perf_counter_ns()

    async def execute(self) -> bool:
        perf = time.perf_counter_ns
        t0 = perf()
        try:
            async with self._request(self._method, self._url, **self._kwargs) as response:
                await response.read()
                status = response.status
            ok = self._ok
            if (status not in ok) if ok is not None else status >= 400:
                raise HTTPStatusError(f"{self._method} {self._target}: HTTP {status}")
        except Exception as exc:
            # Cancellation (a stopping run) is not an Exception: abandoned, not failed.
            duration = perf() - t0
            self._channel.fail(
                (t0 + self._wall_offset_ns) // 1000, duration // 1000, exc, self.ctx.take_lag()
            )
            raise
        duration = perf() - t0
        self._channel.ok((t0 + self._wall_offset_ns) // 1000, duration // 1000, self.ctx.take_lag())
        self.executions += 1
        return False


class HTTPStatusError(Exception):
    """The server answered with a status the flock does not accept."""
