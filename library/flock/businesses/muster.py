"""Muster: mobu's checks of the platform's ingresses and authentication.

Muster is a small Phalanx service placed behind Gafaelfawr ingresses with different rules;
mobu finds it through service discovery (``services.internal.muster``) and checks, in order,
each as mobu's ``MusterRunner`` does:

- ``anonymous``: ``GET /anonymous`` (sent with the token, which the ingress must strip)
  answers ``{"ok": true}``;
- ``auth``: without a token ``/auth/redirect`` answers 302 and ``/auth/fail`` 401 with
  ``WWW-Authenticate: Bearer realm="...``; with ``Authorization: Token bogus`` ``/auth/fail``
  answers 400; with the token both answer ``{"username": USER}``;
- ``quota``: ``/auth/quota`` answers once with the rate-limit headers (limit 1, remaining 0,
  used 1, resource ``muster-quota``, a reset), then 429 with the same headers and
  ``Retry-After`` (so, as in mobu, executions must be at least the quota window apart);
- ``delegated``: ``/delegated/header`` and ``/delegated/authorization`` both answer the user's
  identity ``{"username", "name", "uid", "gid", "groups"}`` as the flock defines the user.

Each check is an event row (operation ``muster_step``, target the check); the whole run is the
main row (operation ``muster``). Requests use the run's shared HTTP pool with this monkey's
own token and never follow redirects (mobu's httpx client does not either).
"""

from __future__ import annotations

from typing import Any

from library.flock.businesses.base import Business
from library.flock.businesses.endpoints import internal_url
from library.flock.options import MusterOptions

RATE_LIMIT = {
    "x-ratelimit-limit": "1",
    "x-ratelimit-remaining": "0",
    "x-ratelimit-resource": "muster-quota",
    "x-ratelimit-used": "1",
}


class MusterError(Exception):
    """Muster answered something other than what the check expects."""


class Muster(Business[MusterOptions]):
    async def startup(self) -> None:
        self.url = (await internal_url(self.ctx.shared, "muster")).rstrip("/")
        self.token = await self.ctx.shared.token_for(self.ctx.user, self.ctx.scopes)

    async def execute(self) -> bool:
        with self.ctx.timed("muster", target=self.url):
            for name, check in (
                ("anonymous", self._check_anonymous),
                ("auth", self._check_auth),
                ("quota", self._check_quota),
                ("delegated", self._check_delegated),
            ):
                with self.ctx.timed("muster_step", target=name):
                    await check()
        self.executions += 1
        return False

    async def _get(self, path: str, auth: str | None = "token") -> tuple[int, Any, dict[str, str]]:
        headers = {}
        if auth == "token":
            headers["Authorization"] = f"Bearer {self.token}"
        elif auth is not None:
            headers["Authorization"] = auth
        async with self.ctx.shared.http().get(
            self.url + path, headers=headers, allow_redirects=False
        ) as resp:
            body = None
            if resp.content_type == "application/json":
                body = await resp.json()
            else:
                await resp.read()
            return resp.status, body, {k.lower(): v for k, v in resp.headers.items()}

    async def _ok(self, path: str) -> Any:
        status, body, _ = await self._get(path)
        if status != 200:
            raise MusterError(f"GET {path} answered {status}, expected 200")
        return body

    async def _check_anonymous(self) -> None:
        body = await self._ok("/anonymous")
        if body != {"ok": True}:
            raise MusterError(f"Anonymous ingress returned failure: {body!s}")

    async def _check_auth(self) -> None:
        status, _, _ = await self._get("/auth/redirect", auth=None)
        if status != 302:
            raise MusterError(f"Auth redirect returned wrong status: {status}")
        status, _, headers = await self._get("/auth/fail", auth=None)
        if status != 401:
            raise MusterError(f"Auth failure returned wrong status: {status}")
        challenge = headers.get("www-authenticate")
        if challenge is None:
            raise MusterError("Auth failure has no WWW-Authenticate header")
        if not challenge.startswith('Bearer realm="'):
            raise MusterError(f"Auth failure has bad WWW-Authenticate header: {challenge}")
        status, _, _ = await self._get("/auth/fail", auth="Token bogus")
        if status != 400:
            raise MusterError(f"Malformed auth returned wrong status: {status}")
        expected = {"username": self.ctx.username}
        for path in ("/auth/redirect", "/auth/fail"):
            body = await self._ok(path)
            if body != expected:
                raise MusterError(f"Bad response from authenticated request: {body!s}")

    async def _check_quota(self) -> None:
        status, _, headers = await self._get("/auth/quota")
        if status != 200:
            raise MusterError(f"GET /auth/quota answered {status}, expected 200")
        _check_rate_headers(headers, "quota request", retry_after=False)
        status, _, headers = await self._get("/auth/quota")
        if status != 429:
            raise MusterError(f"Bad response from quota rejection: {status}")
        _check_rate_headers(headers, "quota rejection", retry_after=True)

    async def _check_delegated(self) -> None:
        user = self.ctx.user
        expected = {
            "username": user.username,
            "name": None,
            "uid": user.uidnumber,
            "gid": user.gidnumber,
            "groups": [{"name": g.name, "id": g.id} for g in user.groups],
        }
        for path in ("/delegated/header", "/delegated/authorization"):
            body = await self._ok(path)
            if body != expected:
                raise MusterError(
                    f"Bad response from delegation ({path}): {body!s} != {expected!s}"
                )


def _check_rate_headers(headers: dict[str, str], what: str, *, retry_after: bool) -> None:
    got = {k: v for k, v in headers.items() if k.startswith("x-ratelimit") or k == "retry-after"}
    wanted_keys = {*RATE_LIMIT, "x-ratelimit-reset"} | ({"retry-after"} if retry_after else set())
    fixed_ok = all(got.get(k) == v for k, v in RATE_LIMIT.items())
    if set(got) != wanted_keys or not fixed_ok:
        raise MusterError(f"Bad headers from {what}: {got!s}")
