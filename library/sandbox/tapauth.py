"""A token-checking front of the sandbox's TAP service, as Gafaelfawr guards TAP on the RSP.

DaCHS itself takes any request. On the Rubin Science Platform every TAP request passes
Gafaelfawr, which refuses a request without a valid token holding ``read:tap``. This front does
the same on 127.0.0.1: it asks the hub who owns the bearer token (``GET /hub/api/user``, which
answers with the token's scopes), refuses without a token (401), with an unknown one (401) or
without the scope ``custom:read:tap`` (403), and otherwise forwards the request to DaCHS with
the user's name in ``X-Auth-Request-User`` and the token removed. DaCHS's own URLs in redirects
and UWS documents are rewritten to the front's, so an async job is followed through the front.

Run as ``python -m library.sandbox.tapauth --port N --upstream URL --hub-api URL`` (what
`library.sandbox.up` does); `start`/`stop`/`status` track it with a PID file like the hub.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

from library.sandbox import state as st

log = logging.getLogger(__name__)

PORT_OFFSET = 4  # after the hub (0..2) and DaCHS (3)
REQUIRED_SCOPE = "custom:read:tap"
PROCESS_MARK = "library.sandbox.tapauth"
# A token's answer is kept this long: one hub round trip per token and minute, not per query.
CACHE_S = 60.0
CACHE_MAX = 10_000  # tokens remembered at most (random tokens must not grow it without end)
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "host",
    "authorization",
}


def _paths(state_dir: Path) -> dict[str, Path]:
    return {
        "pid": Path(state_dir) / "pids" / "tapauth.pid",
        "log": Path(state_dir) / "logs" / "tapauth.log",
    }


def url(port_base: int) -> str:
    return f"http://127.0.0.1:{port_base + PORT_OFFSET}/tap"


def make_app(upstream: str, hub_api: str, required_scope: str = REQUIRED_SCOPE):
    """The aiohttp application: check the token, then forward to UPSTREAM."""
    import aiohttp
    from aiohttp import web

    up = urlsplit(upstream)
    up_origin = f"{up.scheme}://{up.netloc}".encode()
    cache: dict[str, tuple[float, int, dict]] = {}

    async def owner(session: aiohttp.ClientSession, token: str) -> tuple[int, dict]:
        hit = cache.get(token)
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return hit[1], hit[2]
        async with session.get(
            hub_api.rstrip("/") + "/user", headers={"Authorization": f"token {token}"}
        ) as resp:
            model = await resp.json(content_type=None) if resp.status == 200 else {}
            if len(cache) >= CACHE_MAX:
                cache.clear()
            cache[token] = (time.monotonic(), resp.status, model)
            return resp.status, model

    def refuse(status: int, reason: str) -> web.Response:
        headers = {"WWW-Authenticate": f'Bearer realm="sandbox TAP", error_description="{reason}"'}
        return web.Response(status=status, text=reason + "\n", headers=headers)

    async def handle(request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            return refuse(401, "no bearer token: this TAP service needs a token with read:tap")
        session: aiohttp.ClientSession = request.app["session"]
        try:
            status, model = await owner(session, token)
        except aiohttp.ClientError as exc:
            return web.Response(status=502, text=f"cannot check the token with the hub: {exc}\n")
        if status != 200 or not model.get("name"):
            return refuse(401, "the token is not valid on this platform")
        scopes = model.get("scopes") or []
        if required_scope not in scopes:
            return refuse(403, f"the token of {model['name']} lacks the scope read:tap")
        front_origin = f"{request.scheme}://{request.host}".encode()
        # The client's own X-Auth-Request-* headers are dropped (any case), as Gafaelfawr does:
        # only the front says who the user is.
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in _HOP_HEADERS and not k.lower().startswith("x-auth-request-")
        }
        headers["X-Auth-Request-User"] = model["name"]
        target = up_origin.decode() + request.rel_url.raw_path_qs
        body = await request.read()
        async with session.request(
            request.method, target, headers=headers, data=body or None, allow_redirects=False
        ) as resp:
            data = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_HEADERS}
            if "Location" in out_headers:
                out_headers["Location"] = out_headers["Location"].replace(
                    up_origin.decode(), front_origin.decode()
                )
            if any(t in resp.headers.get("Content-Type", "") for t in ("xml", "html", "text")):
                data = data.replace(up_origin, front_origin)
            return web.Response(status=resp.status, body=data, headers=out_headers)

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def running(state_dir: Path):
    return st.live_process(_paths(state_dir)["pid"], PROCESS_MARK)


def start(state_dir: Path, port: int, upstream: str, hub_api: str, timeout: float = 30.0) -> int:
    """Start the front (unless it runs) and wait until it listens; its PID."""
    proc = running(state_dir)
    if proc is not None:
        return proc.pid
    paths = _paths(state_dir)
    return st.start_module(
        PROCESS_MARK,
        ["--port", str(port), "--upstream", upstream, "--hub-api", hub_api],
        pid_file=paths["pid"],
        log_file=paths["log"],
        ports={"TAP auth front": port},
        what="TAP auth front",
        timeout=timeout,
    )


def stop(state_dir: Path) -> int | None:
    proc = running(state_dir)
    if proc is not None:
        st.stop_process_group(proc)
    _paths(state_dir)["pid"].unlink(missing_ok=True)
    return proc.pid if proc is not None else None


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(prog=f"python -m {PROCESS_MARK}")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="DaCHS TAP URL")
    parser.add_argument("--hub-api", required=True, help="the hub's REST API URL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    web.run_app(
        make_app(args.upstream, args.hub_api),
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
