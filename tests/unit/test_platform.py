"""The Platform (resolution, user names) and the token providers that need no hub.

The Gafaelfawr provider runs against a local HTTP server implementing Gafaelfawr's documented
admin token-creation contract (``POST /auth/api/v1/tokens``, an ``AdminTokenRequest`` body, a
bearer token with ``admin:token``, ``201 {"token": ...}``; 401/403/422 otherwise): no Gafaelfawr
can be installed here (it needs Kubernetes, Redis and an identity provider), so this stand-in
is faked against its contract. The JupyterHub provider is tested against the sandbox hub
(tests/integration/test_platform.py).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from library import platform as plat
from library.errors import UserError


@pytest.fixture
def no_env(monkeypatch):
    for name in (
        "BOSUN_HUB_URL",
        "BOSUN_TAP_URL",
        "BOSUN_SIA_URL",
        "BOSUN_DISCOVERY_URL",
        "BOSUN_TOKEN_FILE",
        "BOSUN_TOKEN_PROVIDER",
        "BOSUN_GAFAELFAWR_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_flags_win_over_the_environment(no_env, monkeypatch, tmp_path):
    monkeypatch.setenv("BOSUN_HUB_URL", "http://env-hub/")
    monkeypatch.setenv("BOSUN_TAP_URL", "http://env-tap/tap")
    monkeypatch.setenv("BOSUN_SIA_URL", "http://env-sia/sia")
    p = plat.resolve(tap_url="http://flag-tap/tap", use_sandbox=False)
    assert (p.hub_url, p.tap_url, p.sia_url) == (
        "http://env-hub/",
        "http://flag-tap/tap",
        "http://env-sia/sia",
    )
    assert p.origin == {"hub_url": "environment", "tap_url": "flag", "sia_url": "environment"}
    assert p.tokens is None and p.discovery_url is None


def test_a_platform_is_frozen_data_that_travels(no_env, tmp_path):
    token_file = tmp_path / "admin.token"
    token_file.write_text("a-bare-admin-token-123\n")
    token_file.chmod(0o600)
    p = plat.resolve(hub_url="http://hub/", token_file=token_file, use_sandbox=False)
    assert isinstance(p.tokens, plat.JupyterHubTokens)
    assert p.tokens.admin_token_file == str(token_file)
    assert "a-bare-admin-token-123" not in repr(p) + str(p.to_data())  # where, never what
    assert plat.Platform.from_data(p.to_data()) == p
    with pytest.raises(Exception, match="frozen"):
        p.hub_url = "http://elsewhere/"


def test_token_files_choose_their_provider(no_env, monkeypatch, tmp_path):
    users = tmp_path / "users.tokens"
    users.write_text("# bot users\nbot-a: tok-a-123456\nbot-b: tok-b-123456\n")
    users.chmod(0o600)
    p = plat.resolve(hub_url="http://hub/", token_file=users, use_sandbox=False)
    assert isinstance(p.tokens, plat.StaticTokens)

    monkeypatch.setenv("BOSUN_TOKEN_PROVIDER", "gafaelfawr")
    with pytest.raises(UserError, match=r"\$BOSUN_GAFAELFAWR_URL"):
        plat.resolve(token_file=users, use_sandbox=False)
    monkeypatch.setenv("BOSUN_GAFAELFAWR_URL", "https://rsp.example.org")
    p = plat.resolve(token_file=users, use_sandbox=False)
    assert p.tokens == plat.GafaelfawrTokens(
        base_url="https://rsp.example.org", admin_token_file=str(users)
    )
    monkeypatch.setenv("BOSUN_TOKEN_PROVIDER", "vault")
    with pytest.raises(UserError, match="choose one of jupyterhub, gafaelfawr, file"):
        plat.resolve(token_file=users, use_sandbox=False)


def test_a_missing_url_names_the_flag_and_the_variable(no_env):
    p = plat.resolve(use_sandbox=False)
    with pytest.raises(UserError, match=r"no TAP service: pass --service URL, set \$BOSUN_TAP"):
        p.require("tap_url", "--service")
    with pytest.raises(UserError, match=r"no SIA service: pass --sia-url URL"):
        p.require("sia_url")
    with pytest.raises(UserError, match="no TAP service named 'ssotap'"):
        p.tap("ssotap")


@pytest.mark.parametrize(
    "name",
    ["bot-x/../alice", "bot-x%2F..", "bot-", "bot-A", "bot-x?y", "bot--x", "bot-x.y", "alice"],
)
def test_user_names_outside_the_platform_pattern_are_refused(name):
    with pytest.raises(ValueError, match="user name"):
        plat.check_username(name)


def test_bot_user_names_of_the_platform_pass():
    for name in ("bot-mobu-tap01", "bot-x", "bot-1a"):
        assert plat.check_username(name) == name
    assert plat.check_username("alice", bot=False) == "alice"


def test_flock_scopes_become_hub_scopes():
    from library.platform_tokens import hub_scopes

    assert hub_scopes(["exec:notebook", "read:tap"], "bot-a") == ["self", "custom:read:tap"]
    assert hub_scopes(["access:servers!user", "read:users:name!user=bot-a"], "bot-a") == [
        "access:servers!user=bot-a",
        "read:users:name!user=bot-a",
    ]
    assert hub_scopes([], "bot-a") == []


def test_the_static_provider_hands_out_each_users_own_token(tmp_path):
    from library import redact
    from library.platform_tokens import StaticProvider

    path = tmp_path / "users.tokens"
    path.write_text("bot-a: token-of-a-123\nbot-b: token-of-b-456\n")
    path.chmod(0o600)
    provider = StaticProvider(plat.StaticTokens(path=str(path)))
    assert asyncio.run(provider.token("bot-b")) == "token-of-b-456"
    with pytest.raises(UserError, match="no token for user bot-c in the token file"):
        asyncio.run(provider.token("bot-c"))
    assert "token-of-a-123" not in redact.redact_text("token-of-a-123")

    path.write_text("bot-x/../alice: t-123456\n")
    with pytest.raises(UserError, match="line 1: user name 'bot-x/../alice'"):
        StaticProvider(plat.StaticTokens(path=str(path)))


# --- Gafaelfawr ------------------------------------------------------------------------------

# Gafaelfawr's username pattern (gafaelfawr.constants.USERNAME_REGEX, as mobu copies it).
_USERNAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-[a-z0-9])*[a-z](?:[a-z0-9]|-[a-z0-9])*$")
_REQUEST_FIELDS = {"username", "token_type", "scopes", "expires", "name", "uid", "gid", "groups"}


class FakeGafaelfawr:
    """``POST /auth/api/v1/tokens`` as Gafaelfawr documents it, with a little latency."""

    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def app(self):
        from aiohttp import web

        async def create(request: web.Request) -> web.Response:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return web.json_response({"detail": [{"msg": "No token", "type": "x"}]}, status=401)
            if token != self.admin_token:
                return web.json_response(
                    {"detail": [{"msg": "Token missing required scope", "type": "permission"}]},
                    status=403,
                )
            body = await request.json()
            problem = self._invalid(body)
            if problem:
                return web.json_response(
                    {"detail": [{"loc": ["body", problem[0]], "msg": problem[1]}]}, status=422
                )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.05)  # a database write per token
            finally:
                self.in_flight -= 1
            self.requests.append(body)
            key = secrets.token_urlsafe(16)
            return web.json_response(
                {"token": f"gt-{key}.{secrets.token_urlsafe(16)}"},
                status=201,
                headers={"Location": f"/auth/api/v1/users/{body['username']}/tokens/{key}"},
            )

        app = web.Application()
        app.router.add_post("/auth/api/v1/tokens", create)
        return app

    @staticmethod
    def _invalid(body: dict) -> tuple[str, str] | None:
        unknown = set(body) - _REQUEST_FIELDS
        if unknown:
            return sorted(unknown)[0], "extra fields not permitted"
        if not _USERNAME.match(body.get("username", "")) or len(body["username"]) > 64:
            return "username", "string does not match regex"
        if body.get("token_type") not in ("service", "user"):
            return "token_type", "value is not a valid enumeration member"
        if not isinstance(body.get("scopes", []), list):
            return "scopes", "value is not a valid list"
        expires = body.get("expires")
        if expires is not None:
            when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
            if when <= datetime.now(UTC):
                return "expires", "expiration is in the past"
        for key in ("uid", "gid"):
            if key in body and (not isinstance(body[key], int) or body[key] < 1):
                return key, "ensure this value is greater than or equal to 1"
        for group in body.get("groups", []):
            if set(group) != {"name", "id"}:
                return "groups", "a group has a name and an id"
        return None


@dataclass
class Group:
    name: str
    id: int


@dataclass
class Bot:
    username: str
    uidnumber: int | None = None
    gidnumber: int | None = None
    groups: list[Group] = field(default_factory=list)


async def _with_server(fake: FakeGafaelfawr, body):
    from aiohttp import web

    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        return await body(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def _admin_file(tmp_path, token: str):
    path = tmp_path / "gafaelfawr.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return str(path)


def test_gafaelfawr_service_tokens_per_bot_user_in_small_batches(tmp_path):
    from library import redact
    from library.platform_tokens import GafaelfawrProvider

    fake = FakeGafaelfawr("admin-token-with-admin-scope")
    bots = [
        Bot(f"bot-mobu-tap{i:02d}", 70000 + i, None, [Group("g-bosun", 5000)]) for i in range(25)
    ]

    async def body(base: str):
        source = plat.GafaelfawrTokens(
            base_url=base + "/", admin_token_file=_admin_file(tmp_path, fake.admin_token)
        )
        provider = GafaelfawrProvider(source)
        try:
            tokens = await asyncio.gather(*(provider.token(b, ["read:tap"]) for b in bots))
            again = await provider.token(bots[0], ["read:tap"])
            return tokens, again
        finally:
            await provider.aclose()

    tokens, again = asyncio.run(_with_server(fake, body))
    assert len(set(tokens)) == 25 and again == tokens[0]  # minted once per user and scopes
    assert 1 < fake.max_in_flight <= 10
    first = next(r for r in fake.requests if r["username"] == "bot-mobu-tap00")
    assert first["token_type"] == "service" and first["scopes"] == ["read:tap"]
    assert (first["uid"], first["gid"]) == (70000, 70000)  # no gid: the uid, as mobu does
    assert first["groups"] == [{"name": "g-bosun", "id": 5000}]
    assert all(t not in redact.redact_text(" ".join(tokens)) for t in tokens)


def test_gafaelfawr_refusals_are_one_line_naming_the_user(tmp_path):
    from library.platform_tokens import GafaelfawrProvider, TokenError

    fake = FakeGafaelfawr("the-real-admin-token")

    async def body(base: str):
        source = plat.GafaelfawrTokens(
            base_url=base, admin_token_file=_admin_file(tmp_path, "a-user-token-without-admin")
        )
        provider = GafaelfawrProvider(source)
        try:
            with pytest.raises(TokenError, match=r"bot-a .*HTTP 403: Token missing required"):
                await provider.token(Bot("bot-a"), ["read:tap"])
            with pytest.raises(UserError, match="not a valid platform user name"):
                await provider.token(Bot("bot-a/../b"), ["read:tap"])
        finally:
            await provider.aclose()

    asyncio.run(_with_server(fake, body))
    assert fake.requests == []
