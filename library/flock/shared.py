"""Resources all monkeys of one process share: the HTTP session, the platform, its tokens.

One aiohttp session with an uncapped connector serves every monkey (FACTS: 15 KiB per user
holding a connection, against 21 KiB for a session per user, at the same CPU per request);
each request carries its own user's token, so sharing the pool does not mix identities.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from library.platform import Platform
from library.platform_tokens import provider_for
from library.tokens import token_from_env

if TYPE_CHECKING:
    import aiohttp


class Shared:
    def __init__(self, endpoints: dict[str, Any] | None = None, monkeys: int = 0) -> None:
        self.endpoints = dict(endpoints or {})
        self.monkeys = monkeys
        self._session: aiohttp.ClientSession | None = None
        self.extras: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}

    def http(self) -> aiohttp.ClientSession:
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

    def connector(self) -> aiohttp.BaseConnector | None:
        """The shared connector of the shared session, for clients that make their own."""
        return self.http().connector

    def platform(self) -> Platform:
        """The platform the run was given (resolved once, at the command boundary)."""
        if "platform" not in self.cache:
            data = self.endpoints.get("platform")
            self.cache["platform"] = Platform.from_data(data) if data else Platform()
        platform: Platform = self.cache["platform"]
        return platform

    def tap_url(self) -> str:
        return self.platform().require("tap_url")

    async def token_for(self, user: Any, scopes: list[str] | tuple[str, ...] = ()) -> str | None:
        """USER's own token from the platform's token provider (None: the platform has none).

        Each monkey asks with its own user, so every request carries that user's identity.
        """
        if "tokens" not in self.cache:
            self.cache["tokens"] = provider_for(self.platform().tokens, connector=self.connector())
        provider = self.cache["tokens"]
        return None if provider is None else await provider.token(user, scopes)

    def threads(self) -> ThreadPoolExecutor:
        """Threads for blocking clients (pyvo), one available per monkey (threads start on
        demand): the default executor's min(32, cores + 4) workers would silently cap the
        concurrent queries of a flock."""
        if "threads" not in self.cache:
            self.cache["threads"] = ThreadPoolExecutor(
                max_workers=max(32, self.monkeys), thread_name_prefix="flock-io"
            )
        threads: ThreadPoolExecutor = self.cache["threads"]
        return threads

    def token(self, env_name: str | None = None) -> str | None:
        """A token from the named environment variable, else None (HTTPLoop's token_env)."""
        if env_name:
            return token_from_env(env_name)
        return None

    async def close(self) -> None:
        for extra in self.extras.values():
            closer = getattr(extra, "aclose", None) or getattr(extra, "close", None)
            if closer is not None:
                result = closer()
                if hasattr(result, "__await__"):
                    await result
        self.extras.clear()
        tokens = self.cache.pop("tokens", None)
        if tokens is not None:
            await tokens.aclose()
        threads = self.cache.pop("threads", None)
        if threads is not None:
            # Queries still running in threads finish on their own timeout; do not wait.
            threads.shutdown(wait=False, cancel_futures=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
