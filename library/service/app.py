"""The FastAPI app: mobu's routes and JSON shapes under a prefix, plus pause and resume.

`create_app(services)` builds it over the services it is given (the flock manager, the
authenticator, the runtime); handlers only translate HTTP to those calls, as mobu's and
safir's do. The app has no lifespan of its own: `library.service.server` boots the flocks
before it serves and stops them after, so the same app is testable on its own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from library.flock.models import FlockConfig, parse_flocks
from library.redact import redact_data
from library.service import models as m
from library.service.auth import Authenticator, AuthError, Identity
from library.service.errors import ServiceError
from library.service.flock import ServiceFlock
from library.service.gate import Gate
from library.service.manager import FlockManager
from library.service.runtime import Runtime
from library.service.settings import ServiceSettings
from library.service.solitary import run_solitary

# fastapi's `responses`: status code -> OpenAPI response.
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Flock or monkey not found", "model": m.ErrorModel}
}


@dataclass
class Services:
    """What the handlers work over; later parts (metrics, reports) add routers here."""

    settings: ServiceSettings
    manager: FlockManager
    auth: Authenticator
    runtime: Runtime
    routers: list[APIRouter] = field(default_factory=list)
    # Paths whose routes check their callers themselves (a webhook's signature, a scope).
    exempt_paths: list[str] = field(default_factory=list)
    # Paths read without a token even when anonymous_read is off: pages that hold no data
    # (the web page's shells and assets, which then ask for a token).
    public_paths: list[re.Pattern[str]] = field(default_factory=list)
    # /summary's ci_manager (the run queue, library/service/ci_manager.py); None: null.
    ci_manager: Callable[[], Awaitable[dict[str, Any] | None]] | None = None


PRETTY_MAX_BYTES = 64 * 1024


class FormattedJSONResponse(JSONResponse):
    """JSON for humans, as mobu answers (indented, keys sorted), up to PRETTY_MAX_BYTES.

    An indent makes `json` use its pure-Python encoder, six times slower than the C one: a
    flock of 10,000 monkeys took 600 ms to render indented, on the loop the monkeys share. A
    large answer stays compact (the same JSON without the whitespace), rendered by orjson:
    the stdlib's C encoder still took 30 ms for that flock, orjson takes about 3."""

    def render(self, content: Any) -> bytes:
        compact = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        if len(compact) > PRETTY_MAX_BYTES:
            return compact
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=4, sort_keys=True
        ).encode()


def _flock_response(flock: ServiceFlock, status_code: int = 200, **kwargs: Any) -> Response:
    """mobu's FlockData: indented as FormattedJSONResponse does when small, else compact."""
    body = flock.dump_json()
    if len(body) > PRETTY_MAX_BYTES:
        return Response(body, status_code, media_type="application/json", **kwargs)
    return FormattedJSONResponse(flock.dump(), status_code, **kwargs)


def _who(request: Request) -> Identity:
    identity: Identity = request.scope["state"]["identity"]  # set by the auth middleware
    return identity


def _metadata() -> dict[str, Any]:
    try:
        release = version("bosun")
    except PackageNotFoundError:
        release = "0"
    return {
        "name": "bosun",
        "version": release,
        "description": "mobu's flocks API over bosun's load engine",
    }


def create_app(services: Services) -> FastAPI:
    prefix = services.settings.prefix
    manager, auth = services.manager, services.auth
    app = FastAPI(
        title="bosun service",
        description="mobu's flock API: flocks of bot monkeys that run until stopped.",
        version=_metadata()["version"],
        openapi_url=f"{prefix}/openapi.json",
        docs_url=f"{prefix}/docs",
        redoc_url=f"{prefix}/redoc",
    )
    router = APIRouter()

    def allow(request: Request, flock: str, action: str) -> str:
        who = _who(request)
        auth.check_change(who, flock, action)
        return who.name

    @router.get("/", summary="Application metadata")
    async def get_index() -> dict[str, Any]:
        return {"metadata": _metadata()}

    @router.get("/flocks", summary="List running flocks")
    async def get_flocks() -> list[str]:
        return manager.list_flocks()

    @router.put(
        "/flocks",
        status_code=201,
        summary="Create a new flock (replaces a flock of the same name)",
        responses={201: {"model": m.FlockData}, 422: {"description": "Invalid flock"}},
    )
    async def put_flock(flock_config: FlockConfig, request: Request) -> Response:
        who = allow(request, flock_config.name, "create flock")
        flock = await manager.start_flock(flock_config, source="api", who=who)
        headers = {"Location": str(request.url_for("get_flock", flock=flock.name))}
        notices = await _notices(request)
        if notices:
            # Keys mobu ignores are ignored (mobu's scripts work unchanged), but named: a
            # misspelt start_batch_size is not silently dropped.
            headers["X-Bosun-Notice"] = " | ".join(notices).encode("ascii", "replace").decode()
            for note in notices:
                logging.getLogger("library.service.audit").warning(
                    "%s: flock %s: %s", who, flock.name, note
                )
        return _flock_response(flock, 201, headers=headers)

    @router.get(
        "/flocks/{flock}",
        summary="Status of flock",
        responses={200: {"model": m.FlockData}, **NOT_FOUND},
    )
    async def get_flock(flock: str) -> Response:
        return _flock_response(manager.get_flock(flock))

    @router.delete("/flocks/{flock}", status_code=204, summary="Stop a flock", responses=NOT_FOUND)
    async def delete_flock(flock: str, request: Request) -> Response:
        manager.get_flock(flock)
        who = allow(request, flock, "delete flock")
        await manager.stop_flock(flock, who)
        return Response(status_code=204)

    @router.post(
        "/flocks/{flock}/refresh",
        status_code=202,
        summary="Signal a flock to refresh",
        responses=NOT_FOUND,
    )
    async def refresh_flock(flock: str, request: Request) -> Response:
        manager.get_flock(flock)
        who = allow(request, flock, "refresh flock")
        await manager.refresh_flock(flock, who)
        return Response(status_code=202)

    @router.post(
        "/flocks/{flock}/pause",
        summary="Pause a flock (bosun): monkeys idle, labs released or kept",
        responses={200: {"model": m.FlockSummary}, **NOT_FOUND},
    )
    async def pause_flock(
        flock: str,
        request: Request,
        labs: Annotated[Literal["release", "keep"] | None, Query()] = None,
    ) -> Response:
        manager.get_flock(flock)
        who = allow(request, flock, "pause flock")
        paused = await manager.pause_flock(flock, who, labs)
        return FormattedJSONResponse(paused.summary())

    @router.post(
        "/flocks/{flock}/resume",
        summary="Resume a paused flock (bosun)",
        responses={200: {"model": m.FlockSummary}, **NOT_FOUND},
    )
    async def resume_flock(flock: str, request: Request) -> Response:
        manager.get_flock(flock)
        who = allow(request, flock, "resume flock")
        resumed = await manager.resume_flock(flock, who)
        return FormattedJSONResponse(resumed.summary())

    @router.get("/flocks/{flock}/monkeys", summary="Monkeys in flock", responses=NOT_FOUND)
    async def get_monkeys(flock: str) -> Response:
        return FormattedJSONResponse(manager.get_flock(flock).list_monkeys())

    @router.get(
        "/flocks/{flock}/monkeys/{monkey}",
        summary="Status of monkey",
        responses={200: {"model": m.MonkeyData}, **NOT_FOUND},
    )
    async def get_monkey(flock: str, monkey: str) -> Response:
        return FormattedJSONResponse(manager.get_flock(flock).get_monkey(monkey))

    @router.get(
        "/flocks/{flock}/monkeys/{monkey}/log",
        summary="Log for monkey (its last lines)",
        response_class=PlainTextResponse,
        responses=NOT_FOUND,
    )
    async def get_monkey_log(flock: str, monkey: str) -> Response:
        text = manager.get_flock(flock).monkey_log(monkey)
        now = datetime.now(tz=UTC).isoformat(timespec="seconds")
        filename = f"{flock}-{monkey}-{now}"
        return PlainTextResponse(
            text, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
        )

    @router.get(
        "/flocks/{flock}/summary",
        summary="Summary of statistics for a flock",
        responses={200: {"model": m.FlockSummary}, **NOT_FOUND},
    )
    async def get_flock_summary(flock: str) -> Response:
        return FormattedJSONResponse(manager.get_flock(flock).summary())

    @router.post(
        "/run",
        summary="Run monkey business once",
        responses={200: {"model": m.SolitaryResult}},
    )
    async def put_run(solitary_config: m.SolitaryConfig, request: Request) -> Response:
        who = _who(request)
        auth.check_admin(who, "solitary run")
        manager.check_runnable(
            FlockConfig(
                name="solitary",
                count=1,
                users=[solitary_config.user],
                scopes=solitary_config.scopes,
                business=solitary_config.business,
            )
        )
        logging.getLogger("library.service.audit").info(
            "%s: solitary run of %s as %s",
            who.name,
            solitary_config.business.type,
            solitary_config.user.username,
        )
        return FormattedJSONResponse(await run_solitary(solitary_config, services.runtime))

    @router.get(
        "/summary",
        summary="Summary of all app state",
        responses={200: {"model": m.CombinedSummary}},
    )
    async def get_summary() -> Response:
        ci_manager = await services.ci_manager() if services.ci_manager is not None else None
        return FormattedJSONResponse({"flocks": manager.summaries(), "ci_manager": ci_manager})

    app.include_router(router, prefix=prefix)
    for extra in services.routers:
        app.include_router(extra)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, Any]:
        return _metadata()

    if prefix:

        @app.get("/docs", include_in_schema=False)
        async def docs_redirect() -> Response:
            return RedirectResponse(f"{prefix}/docs")

        @app.get("/redoc", include_in_schema=False)
        async def redoc_redirect() -> Response:
            return RedirectResponse(f"{prefix}/redoc")

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return JSONResponse(exc.detail(), status_code=exc.status)

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> Response:
        kind = "unauthorized" if exc.status == 401 else "forbidden"
        headers = {"WWW-Authenticate": 'Bearer realm="bosun"'} if exc.status == 401 else None
        return JSONResponse(
            {"detail": [{"msg": exc.message, "type": kind}]}, exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's shape (mobu's), with secrets in the echoed input masked.
        errors = [redact_data(_jsonable(e)) for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_middleware(
        Gate,
        auth=auth,
        max_body_bytes=services.settings.max_body_bytes,
        prefix=prefix,
        exempt=tuple(services.exempt_paths),
        public=tuple(services.public_paths),
    )
    return app


async def _notices(request: Request) -> list[str]:
    """The flock file loader's notices for the body (ignored keys, old business names)."""
    try:
        (parsed,) = parse_flocks([await request.json()], "PUT /flocks")
    except Exception:  # noqa: BLE001 - the body was validated already; notices are extra
        return []
    return parsed.notices


def _jsonable(error: dict[str, Any]) -> dict[str, Any]:
    out = dict(error)
    if "ctx" in out:
        out["ctx"] = {k: str(v) if isinstance(v, Exception) else v for k, v in out["ctx"].items()}
    out["loc"] = list(out.get("loc", ()))
    if isinstance(out.get("input"), bytes):
        out["input"] = out["input"].decode("utf-8", "replace")[:200]
    return out
