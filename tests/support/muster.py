"""A local server implementing Muster's documented responses, for the Muster business's tests.

Muster (lsst-sqre/muster) runs only on Phalanx, behind Gafaelfawr ingresses; neither is
installable here. This server answers its routes as mobu's own test double
(lsst-sqre/mobu tests/support/muster.py) and Muster's contract describe them: ``/anonymous``
``{"ok": true}``; ``/auth/redirect`` 302 without a token; ``/auth/fail`` 401 with
``WWW-Authenticate: Bearer realm="..."`` without one, 400 for a non-bearer scheme;
``/auth/quota`` once per window with the ``X-RateLimit-*`` headers, then 429 with
``Retry-After``; ``/delegated/header`` and ``/delegated/authorization`` the user's identity.
Gafaelfawr's part (who owns a token) is played by the sandbox hub: ``GET /hub/api/user`` with
the token; the uid, gid and groups Gafaelfawr would know come from ``identities``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from email.utils import formatdate


class FakeMuster:
    def __init__(self, hub_api_url: str, identities: dict[str, dict], quota_window_s: float = 2.0):
        self.hub_api_url = hub_api_url.rstrip("/")
        self.identities = identities
        self.quota_window_s = quota_window_s
        self.quota: dict[str, tuple[float, int]] = {}
        self.requests: list[tuple[str, str]] = []  # (path, authorization scheme or "")
        self.url = ""
        self._loop = None
        self._thread = None
        self._runner = None

    # --- Gafaelfawr's part ---------------------------------------------------------------

    def _user(self, token: str) -> str | None:
        request = urllib.request.Request(self.hub_api_url + "/user")
        request.add_header("Authorization", f"token {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response).get("name")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    async def _identity(self, request):
        from aiohttp import web

        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            return None, web.Response(status=401)
        if scheme.lower() != "bearer":
            return None, web.Response(status=400)
        name = await asyncio.to_thread(self._user, token.strip())
        if name is None:
            return None, web.Response(status=401)
        return name, None

    # --- Muster's routes -----------------------------------------------------------------

    def _app(self):
        from aiohttp import web

        async def log(request, handler):
            scheme = request.headers.get("Authorization", "").partition(" ")[0]
            self.requests.append((request.path, scheme))
            return await handler(request)

        async def anonymous(request):
            return web.json_response({"ok": True})

        async def auth_fail(request):
            if not request.headers.get("Authorization"):
                return web.Response(
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="127.0.0.1"'}
                )
            name, refused = await self._identity(request)
            return refused or web.json_response({"username": name})

        async def auth_redirect(request):
            if not request.headers.get("Authorization"):
                return web.Response(status=302, headers={"Location": "http://127.0.0.1/login"})
            name, refused = await self._identity(request)
            return refused or web.json_response({"username": name})

        async def auth_quota(request):
            name, refused = await self._identity(request)
            if refused:
                return refused
            now = time.time()
            start, count = self.quota.get(name, (0.0, 0))
            if now >= start + self.quota_window_s:
                start, count = now, 0
            count += 1
            self.quota[name] = (start, count)
            reset = start + self.quota_window_s
            headers = {
                "X-RateLimit-Limit": "1",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(reset)),
                "X-RateLimit-Resource": "muster-quota",
                "X-RateLimit-Used": "1",
            }
            if count >= 2:
                headers["Retry-After"] = formatdate(reset, usegmt=True)
                return web.Response(status=429, headers=headers)
            return web.json_response({"username": name}, headers=headers)

        async def delegated(request):
            name, refused = await self._identity(request)
            if refused:
                return refused
            known = self.identities.get(name, {})
            return web.json_response(
                {
                    "username": name,
                    "name": known.get("name"),
                    "uid": known.get("uid"),
                    "gid": known.get("gid"),
                    "groups": known.get("groups", []),
                }
            )

        app = web.Application(middlewares=[web.middleware(log)])
        app.router.add_get("/muster/anonymous", anonymous)
        app.router.add_get("/muster/auth/fail", auth_fail)
        app.router.add_get("/muster/auth/redirect", auth_redirect)
        app.router.add_get("/muster/auth/quota", auth_quota)
        app.router.add_get("/muster/delegated/header", delegated)
        app.router.add_get("/muster/delegated/authorization", delegated)
        return app

    # --- lifecycle (a thread with its own loop, port chosen by the OS) -------------------

    def start(self) -> str:
        from aiohttp import web

        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self._app())
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}/muster"
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-muster", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Muster server did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
