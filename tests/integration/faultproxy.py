"""A reverse proxy for the fault tests: pass-through, 5xx, connection resets, stalls, slow bodies.

It runs an aiohttp server on 127.0.0.1 (ephemeral port) in a thread of its own, in front of one
upstream (the hub or the TAP service). The mode can be switched while it runs::

    with FaultProxy("http://127.0.0.1:8703") as proxy:
        url = proxy.url + "/tap"
        proxy.set_mode("status", status=503)        # every request answered 503
        proxy.set_mode("reset", count=3)            # the next 3 connections closed without a word
        proxy.set_mode("stall")                     # requests held, never answered
        proxy.set_mode("slow", chunk=256, every=0.1)  # the upstream body, trickled
        proxy.set_mode("pass")

`fraction` (0..1) injects the fault into that share of the requests only; `count` into the next
N requests, after which the proxy passes through again. Every stall is bounded by `max_stall`
and by the proxy's stop, so nothing waits forever. `stats` counts requests by what was done to
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass

MODES = ("pass", "status", "reset", "stall", "slow")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "host",
}


@dataclass
class Mode:
    kind: str = "pass"
    status: int = 503
    count: int | None = None  # faults left to inject; None: until the mode changes
    fraction: float = 1.0
    chunk: int = 256  # slow: bytes per write
    every: float = 0.1  # slow: seconds between writes


class FaultProxy:
    def __init__(self, upstream: str, *, max_stall: float = 120.0, timeout: float = 300.0):
        self.upstream = upstream.rstrip("/")
        self.max_stall = max_stall
        self.timeout = timeout  # the proxy refuses to live longer than this
        self.port: int | None = None
        self.stats: Counter[str] = Counter()
        self._mode = Mode()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # --- control, from any thread ----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, kind: str, **settings) -> None:
        if kind not in MODES:
            raise ValueError(f"unknown mode {kind!r} (known: {', '.join(MODES)})")
        with self._lock:
            self._mode = Mode(kind, **settings)

    def _take(self) -> Mode:
        """The mode to apply to one request (pass-through once a counted fault is used up)."""
        with self._lock:
            mode = self._mode
            if mode.kind == "pass":
                return mode
            if mode.count is not None and mode.count <= 0:
                self._mode = Mode()
                return self._mode
            if mode.fraction < 1.0 and random.random() >= mode.fraction:
                return Mode()
            if mode.count is not None:
                mode.count -= 1
            return mode

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the fault proxy did not start within 15 s")
        if self._error is not None:
            raise RuntimeError(f"the fault proxy did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(20)
            if self._thread.is_alive():
                raise RuntimeError("the fault proxy did not stop within 20 s")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the server, in its own thread -----------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import aiohttp
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)

        async def handle(request):
            return await self._handle(request, session)

        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.timeout)
        except TimeoutError:
            pass
        finally:
            await runner.cleanup()
            await session.close()

    async def _handle(self, request, session):
        from aiohttp import web

        mode = self._take()
        self.stats["requests"] += 1
        if mode.kind == "status":
            self.stats["status"] += 1
            return web.Response(status=mode.status, text=f"fault proxy: HTTP {mode.status}\n")
        if mode.kind == "reset":
            self.stats["reset"] += 1
            # No response at all: the connection is reset (RST) under the client.
            _reset(request.transport)
            raise asyncio.CancelledError
        if mode.kind == "stall":
            self.stats["stall"] += 1
            # Accepted and never answered, until the client gives up (its timeout), the stall
            # bound or the proxy's stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.max_stall)
            _reset(request.transport)
            raise asyncio.CancelledError
        return await self._forward(request, session, mode)

    async def _forward(self, request, session, mode: Mode):
        from aiohttp import web

        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with session.request(
            request.method,
            self.upstream + str(request.rel_url),
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            if upstream.headers.get("Content-Encoding"):
                out_headers["Content-Encoding"] = upstream.headers["Content-Encoding"]
            if mode.kind != "slow":
                self.stats["pass"] += 1
                return web.Response(status=upstream.status, headers=out_headers, body=payload)
        self.stats["slow"] += 1
        response = web.StreamResponse(status=upstream.status, headers=out_headers)
        response.content_length = len(payload)
        await response.prepare(request)
        for offset in range(0, len(payload), mode.chunk):
            if self._stop.is_set():
                break
            await response.write(payload[offset : offset + mode.chunk])
            await asyncio.sleep(mode.every)
        await response.write_eof()
        return response


def _reset(transport) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), not an orderly FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
