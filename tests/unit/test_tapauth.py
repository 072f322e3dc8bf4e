"""The sandbox's TAP front: what it forwards to DaCHS.

The hub and DaCHS are stood in for by two small local servers: the hub's by its documented
``GET /hub/api/user`` answer (name and scopes of the token's owner), DaCHS's by a server that
echoes the headers it received, which DaCHS never shows. The front itself runs for real.
(tests/integration/test_platform_sandbox.py follows real queries through the real front.)
"""

import asyncio

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from library.sandbox import tapauth


def _hub() -> web.Application:
    async def user(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "token good-token":
            return web.json_response({"status": 403}, status=403)
        return web.json_response({"name": "bot-a", "scopes": [tapauth.REQUIRED_SCOPE]})

    app = web.Application()
    app.router.add_get("/hub/api/user", user)
    return app


def _echo() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        pairs = [[k, v] for k, v in request.headers.items()]
        return web.json_response(pairs)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def _forwarded(headers: dict[str, str]) -> tuple[int, list]:
    hub, upstream = TestServer(_hub(), host="127.0.0.1"), TestServer(_echo(), host="127.0.0.1")
    async with hub, upstream:
        front = tapauth.make_app(str(upstream.make_url("/tap")), str(hub.make_url("/hub/api")))
        server = TestServer(front, host="127.0.0.1")
        async with server, ClientSession() as client:
            resp = await client.get(server.make_url("/tap/sync"), headers=headers)
            body = await resp.json() if resp.status == 200 else []
            return resp.status, body


def test_the_user_header_is_the_fronts_only():
    """A client's own X-Auth-Request-User (in any case) never reaches DaCHS beside the front's."""
    status, pairs = asyncio.run(
        _forwarded(
            {
                "Authorization": "Bearer good-token",
                "x-auth-request-user": "alice",
                "X-Auth-Request-Email": "alice@example.org",
            }
        )
    )
    assert status == 200
    users = [v for k, v in pairs if k.lower() == "x-auth-request-user"]
    assert users == ["bot-a"]
    assert not [k for k, _ in pairs if k.lower() in ("authorization", "x-auth-request-email")]


def test_no_token_or_a_bad_one_is_refused():
    assert asyncio.run(_forwarded({}))[0] == 401
    assert asyncio.run(_forwarded({"Authorization": "Bearer bad-token"}))[0] == 401
