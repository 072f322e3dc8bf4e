"""Resources all monkeys of one process share: the HTTP session, platform endpoints, clients.

One aiohttp session with an uncapped connector serves every monkey (FACTS: 15 KiB per user
holding a connection, against 21 KiB for a session per user, at the same CPU per request);
each request carries its own user's token, so sharing the pool does not mix identities.
"""

from __future__ import annotations

from typing import Any


class Shared:
    def __init__(self, endpoints: dict[str, Any] | None = None, monkeys: int = 0) -> None:
        self.endpoints = dict(endpoints or {})
        self.monkeys = monkeys
        self._session = None
        self.extras: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}

    def http(self):
        """The process-wide aiohttp session, created on first use inside the running loop."""
        if self._session is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Cookies are per user on the platform; a shared jar would leak between monkeys.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return self._session

    def connector(self):
        """The shared connector of the shared session, for clients that make their own."""
        return self.http().connector

    def platform(self):
        """The hub and its tokens (`--hub-url`/`--token-file`, else environment, else sandbox)."""
        if "platform" not in self.cache:
            from pathlib import Path

            from library.jupyter.platform import resolve

            token_file = self.endpoints.get("token_file")
            self.cache["platform"] = resolve(
                self.endpoints.get("hub_url"), Path(token_file) if token_file else None
            )
        return self.cache["platform"]

    def tap_url(self) -> str:
        if "tap_url" not in self.cache:
            from library.tap.service import resolve_url

            self.cache["tap_url"] = resolve_url(self.endpoints.get("tap_url"))
        return self.cache["tap_url"]

    def threads(self):
        """Threads for blocking clients (pyvo), one available per monkey (threads start on
        demand): the default executor's min(32, cores + 4) workers would silently cap the
        concurrent queries of a flock."""
        if "threads" not in self.cache:
            from concurrent.futures import ThreadPoolExecutor

            self.cache["threads"] = ThreadPoolExecutor(
                max_workers=max(32, self.monkeys), thread_name_prefix="flock-io"
            )
        return self.cache["threads"]

    def token(self, env_name: str | None = None) -> str | None:
        """A token from the named environment variable, else the platform token, else None."""
        if env_name:
            from library.tokens import token_from_env

            value = token_from_env(env_name)
            if value:
                return value
        return self.endpoints.get("token")

    async def close(self) -> None:
        for extra in self.extras.values():
            closer = getattr(extra, "aclose", None) or getattr(extra, "close", None)
            if closer is not None:
                result = closer()
                if hasattr(result, "__await__"):
                    await result
        self.extras.clear()
        threads = self.cache.pop("threads", None)
        if threads is not None:
            # Queries still running in threads finish on their own timeout; do not wait.
            threads.shutdown(wait=False, cancel_futures=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
