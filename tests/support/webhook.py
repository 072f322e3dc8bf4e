"""A local HTTP server on 127.0.0.1 for the service's tests and bench: a Slack-compatible
webhook receiver that records every post (and can fail the first N with 503), and a target
whose answer a test switches (200 or 500) to make a flock fail and recover. An aiohttp
server on its own loop in a thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any


class LocalServer:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        # The next `fail_posts` webhook posts are answered 503 (kept in `failed_posts`).
        self.fail_posts = 0
        self.failed_posts: list[dict[str, Any]] = []
        self.status = 200
        self.requests = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        self._thread = threading.Thread(target=self._run, name="local-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("local server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def wait_posts(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.posts) >= n:
                return list(self.posts)
            time.sleep(0.1)
        raise AssertionError(f"{n} webhook posts expected in {timeout} s, got {self.posts}")

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            post = {"path": request.path, "json": await request.json()}
            if self.fail_posts > 0:
                self.fail_posts -= 1
                self.failed_posts.append(post)
                return web.Response(status=503, text="unavailable")
            self.posts.append(post)
            return web.Response(text="ok")

        async def target(request: web.Request) -> web.Response:
            self.requests += 1
            return web.Response(status=self.status, text="target")

        app = web.Application()
        app.router.add_post("/hooks/{rest:.*}", hook)
        app.router.add_get("/target", target)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
