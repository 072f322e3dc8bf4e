"""Token providers: one per real way a platform hands bot users their tokens.

- `JupyterHubProvider`: the hub's REST API with an admin (service) token, creating the user
  if needed and minting a per-user token that carries the flock's scopes (the sandbox, plain
  JupyterHub).
- `GafaelfawrProvider`: Gafaelfawr's admin token API, as mobu uses it on the Rubin Science
  Platform: one service token per bot user, with the flock's scopes, uid/gid/groups passed
  through, at most `batch_size` creations in flight (Gafaelfawr writes every token to one
  table, so more parallelism only queues).
- `StaticProvider`: a file of ``user: token`` lines for users and tokens that exist already.

Every token is registered for masking the moment it exists, before any caller sees it. A
provider caches one token per (user, scopes), so the monkeys of a flock mint once each.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from library import urls
from library.errors import UserError
from library.platform import (
    GafaelfawrTokens,
    JupyterHubTokens,
    StaticTokens,
    TokenSource,
    check_username,
)
from library.redact import register_secret
from library.tokens import read_secret_file, read_token

if TYPE_CHECKING:
    import aiohttp


class TokenError(UserError):
    """A token could not be obtained: the platform refused or failed (exit 1, not bad input)."""

    exit_code = 1


class BotUser(Protocol):
    """What a provider needs of a user (`library.flock.models.User` is one)."""

    @property
    def username(self) -> str: ...


class TokenProvider(Protocol):
    """Hands out each bot user's own token, with the scopes asked for."""

    async def token(self, user: BotUser | str, scopes: Sequence[str] = ()) -> str: ...

    async def aclose(self) -> None: ...


def _name(user: BotUser | str) -> str:
    return check_username(user if isinstance(user, str) else user.username)


class _Cached:
    """One token per (user, scopes), minted once even when monkeys ask at the same time."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, tuple[str, ...]], asyncio.Future[str]] = {}

    async def token(self, user: BotUser | str, scopes: Sequence[str] = ()) -> str:
        try:
            name = _name(user)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        key = (name, tuple(scopes))
        future = self._tokens.get(key)
        if future is None:
            future = asyncio.ensure_future(self._mint(user, name, list(scopes)))
            self._tokens[key] = future
            future.add_done_callback(functools.partial(self._forget_failed, key=key))
        return await asyncio.shield(future)

    def _forget_failed(self, future: asyncio.Future[str], key: tuple[str, tuple[str, ...]]) -> None:
        # A failed or cancelled mint is not cached: the next ask tries again.
        if future.cancelled() or future.exception() is not None:
            self._tokens.pop(key, None)

    async def _mint(self, user: BotUser | str, name: str, scopes: list[str]) -> str:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class _HTTP(_Cached):
    """A provider that talks HTTP with its own admin token over an aiohttp session."""

    def __init__(
        self, admin_token_file: str, connector: aiohttp.BaseConnector | None = None
    ) -> None:
        super().__init__()
        self._admin = read_token(admin_token_file, "admin token file")
        self._connector = connector
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=self._connector,
                connector_owner=self._connector is None,
                timeout=aiohttp.ClientTimeout(total=60),
            )
        return self._session

    async def _post(self, url: str, body: dict[str, Any] | None, scheme: str) -> tuple[int, Any]:
        import aiohttp

        headers = {"Authorization": f"{scheme} {self._admin}"}
        try:
            async with self._http().post(url, json=body, headers=headers) as resp:
                text = await resp.text()
                try:
                    data = json.loads(text) if text else None
                except ValueError:
                    data = text[:200]
                return resp.status, data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenError(f"POST {url}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# JupyterHub 5's own scope names (jupyterhub.scopes.scope_definitions): passed through as is.
HUB_SCOPES = frozenset(
    {
        "access:servers",
        "access:services",
        "admin-ui",
        "admin:auth_state",
        "admin:groups",
        "admin:server_state",
        "admin:servers",
        "admin:services",
        "admin:users",
        "delete:groups",
        "delete:servers",
        "delete:users",
        "groups",
        "groups:shares",
        "inherit",
        "list:groups",
        "list:services",
        "list:users",
        "proxy",
        "read:groups",
        "read:groups:name",
        "read:groups:shares",
        "read:hub",
        "read:metrics",
        "read:roles",
        "read:roles:groups",
        "read:roles:services",
        "read:roles:users",
        "read:servers",
        "read:services",
        "read:services:name",
        "read:shares",
        "read:tokens",
        "read:users",
        "read:users:activity",
        "read:users:groups",
        "read:users:name",
        "read:users:shares",
        "self",
        "servers",
        "shares",
        "shutdown",
        "start:servers",
        "tokens",
        "users",
        "users:activity",
        "users:shares",
    }
)
# RSP scopes with a meaning on the hub itself: using a lab is being yourself on the hub.
RSP_ON_HUB = {"exec:notebook": ("self",)}


def hub_scopes(scopes: Iterable[str], user: str) -> list[str]:
    """The flock's scopes as JupyterHub scopes for USER's token.

    Hub scopes pass (a bare ``!user`` filter is pinned to USER); ``exec:notebook`` becomes
    ``self``; any other RSP scope (``read:tap``) becomes the hub custom scope ``custom:NAME``,
    which the hub must define (the sandbox defines the RSP ones, and its TAP front checks
    ``custom:read:tap``). A scope the hub does not know is refused by the hub, by name.
    """
    out: list[str] = []
    for scope in scopes:
        base, bang, filt = scope.partition("!")
        if scope in RSP_ON_HUB:
            out.extend(RSP_ON_HUB[scope])
        elif base in HUB_SCOPES or base.startswith("custom:"):
            out.append(f"{base}!user={user}" if bang and filt == "user" else scope)
        else:
            out.append(f"custom:{scope}")
    return list(dict.fromkeys(out))


class JupyterHubProvider(_HTTP):
    """Per-user tokens from the hub's REST API (``POST /hub/api/users/NAME/tokens``)."""

    def __init__(
        self, source: JupyterHubTokens, connector: aiohttp.BaseConnector | None = None
    ) -> None:
        super().__init__(source.admin_token_file, connector)
        base = source.hub_url if source.hub_url.endswith("/") else source.hub_url + "/"
        self._api = base + "hub/api/"
        self._expires_in = source.expires_in

    async def _mint(self, user: BotUser | str, name: str, scopes: list[str]) -> str:
        user_url = self._api + "users/" + urls.segment(name)
        status, data = await self._post(user_url, None, "token")
        if status not in (201, 409):
            raise TokenError(f"creating hub user {name}: HTTP {status}: {_message(data)}")
        body: dict[str, Any] = {"note": "bosun", "expires_in": self._expires_in}
        if scopes:
            body["scopes"] = hub_scopes(scopes, name)
        status, data = await self._post(user_url + "/tokens", body, "token")
        if status not in (200, 201) or not isinstance(data, dict) or "token" not in data:
            asked = f" with scopes {body.get('scopes')}" if scopes else ""
            raise TokenError(
                f"minting a hub token for {name}{asked}: HTTP {status}: {_message(data)}"
            )
        token: str = data["token"]
        register_secret(token)
        return token


class GafaelfawrProvider(_HTTP):
    """Service tokens from ``POST /auth/api/v1/tokens`` (Gafaelfawr's admin token API).

    The request is Gafaelfawr's ``AdminTokenRequest``: ``username``, ``token_type``
    ``"service"``, ``scopes``, ``expires``, ``name``, ``uid``, ``gid`` (defaults to the uid, as
    mobu does) and ``groups`` (``[{"name", "id"}]``); the admin token needs ``admin:token``.
    The answer is ``201`` with ``{"token": ...}``.
    """

    def __init__(
        self, source: GafaelfawrTokens, connector: aiohttp.BaseConnector | None = None
    ) -> None:
        super().__init__(source.admin_token_file, connector)
        self._url = source.base_url.rstrip("/") + "/auth/api/v1/tokens"
        self._lifetime = dt.timedelta(seconds=source.lifetime_s)
        self._batch = asyncio.Semaphore(source.batch_size)

    def request_body(self, user: BotUser | str, name: str, scopes: list[str]) -> dict[str, Any]:
        uid = getattr(user, "uidnumber", None)
        gid = getattr(user, "gidnumber", None) or uid
        groups = [
            {"name": g["name"] if isinstance(g, dict) else g.name, "id": _group_id(g)}
            for g in (getattr(user, "groups", None) or [])
        ]
        expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + self._lifetime
        body: dict[str, Any] = {
            "username": name,
            "token_type": "service",
            "scopes": scopes,
            "expires": expires.isoformat().replace("+00:00", "Z"),
            "name": "bosun bot user",
            "groups": groups,
        }
        if uid is not None:
            body["uid"] = uid
        if gid is not None:
            body["gid"] = gid
        return body

    async def _mint(self, user: BotUser | str, name: str, scopes: list[str]) -> str:
        body = self.request_body(user, name, scopes)
        async with self._batch:
            status, data = await self._post(self._url, body, "Bearer")
        if status != 201 or not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise TokenError(
                f"Gafaelfawr token for {name} (POST {self._url}): HTTP {status}: {_message(data)}"
            )
        token: str = data["token"]
        register_secret(token)
        return token


class StaticProvider(_Cached):
    """Tokens read from a file of ``user: token`` lines (``#`` comments allowed)."""

    def __init__(self, source: StaticTokens) -> None:
        super().__init__()
        self._path = source.path
        self._by_user: dict[str, str] = {}
        text = read_secret_file(source.path)
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, sep, token = line.partition(":")
            if not sep or not user.strip() or not token.strip():
                raise UserError(f"--token-file {source.path} line {n}: expected 'user: token'")
            try:
                check_username(user.strip())
            except ValueError as exc:
                raise UserError(f"--token-file {source.path} line {n}: {exc}") from None
            self._by_user[user.strip()] = token.strip()

    def users(self) -> list[str]:
        return list(self._by_user)

    async def _mint(self, user: BotUser | str, name: str, scopes: list[str]) -> str:
        return self.lookup(name)

    def lookup(self, name: str) -> str:
        try:
            return self._by_user[name]
        except KeyError:
            raise UserError(
                f"no token for user {name} in the token file {self._path}: add a line "
                f"'{name}: TOKEN'"
            ) from None


def provider_for(
    source: TokenSource | None, *, connector: aiohttp.BaseConnector | None = None
) -> TokenProvider | None:
    """The provider a platform's token source describes (None: the platform wants no token)."""
    if source is None:
        return None
    if isinstance(source, JupyterHubTokens):
        return JupyterHubProvider(source, connector)
    if isinstance(source, GafaelfawrTokens):
        return GafaelfawrProvider(source, connector)
    return StaticProvider(source)


def token_now(source: TokenSource | None, user: str, scopes: Sequence[str] = ()) -> str | None:
    """USER's token from SOURCE for synchronous callers (a command outside an event loop)."""
    provider = provider_for(source)
    if provider is None:
        return None

    async def go() -> str:
        try:
            return await provider.token(user, scopes)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def _group_id(group: Any) -> int | None:
    return group.get("id") if isinstance(group, dict) else getattr(group, "id", None)


def _message(data: Any) -> str:
    """The service's own reason: JupyterHub's ``message``, FastAPI's ``detail``, else text."""
    if isinstance(data, dict):
        if data.get("message"):
            return str(data["message"])
        detail = data.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            loc = ".".join(str(p) for p in first.get("loc", []))
            return f"{loc}: {first.get('msg', '')}".strip(": ")
        if detail:
            return str(detail)
    return str(data)[:200] if data else "(no body)"
