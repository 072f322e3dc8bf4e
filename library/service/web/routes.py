"""The web page's routes, all under ``{prefix}/web``:

- pages (HTML shells, no data in them): ``/web`` (overview), ``/web/flocks/{flock}``,
  ``/web/runs``, ``/web/runs/{id}``, ``/web/results``, ``/web/testcases/{testcase}``
- assets: ``/web/static/{app.js,app.css,uPlot.iife.min.js,uPlot.min.css}``
- JSON the pages poll: ``/web/api/overview``, ``/web/api/whoami``,
  ``/web/api/flocks/{flock}`` (its overview row), ``…/monkeys``, ``…/series?window=``,
  ``/web/api/runs/{id}`` (a run with its steps, JUnit cases and files)
- a run's artifact files, read-only and confined to its dir: ``/web/runs/{id}/files/{path}``

The rest comes from the service's own API (flocks, pause, resume, refresh, delete, a monkey's
log, runs, cancel, results): the page drives the API an operator's script would.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from library.config import repo_root
from library.queue.store import RunNotFound
from library.service.auth import ADMIN, EVENTS
from library.service.web.data import WebData
from library.service.web.rundir import OutsideRun, confined, describe
from library.service.web.series import WINDOWS

if TYPE_CHECKING:
    from library.service.auth import Authenticator
    from library.service.manager import FlockManager
    from library.service.observe import Observer
    from library.service.settings import ServiceSettings
    from library.triggers.service import TriggerService

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PAGES = {
    "overview": "Overview",
    "flock": "Flock",
    "runs": "Runs",
    "run": "Run",
    "results": "Results",
    "testcase": "Test case",
}
# Files of the page's own and uPlot's (npm, ./node_modules), by the name the page asks.
OWN_ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
UPLOT_ASSETS = {"uPlot.iife.min.js": "text/javascript", "uPlot.min.css": "text/css"}
ASSET_CACHE = "public, max-age=3600"
# An artifact file is shown, never run: no script, no form, no plugin, types not sniffed.
FILE_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'self'; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
TEXT_SUFFIXES = {".log", ".txt", ".yaml", ".yml", ".sh", ".xml", ".json", ".csv", ".md"}


def public_paths(prefix: str) -> list[re.Pattern[str]]:
    """The pages' shells and assets: no data in them, so read without a token even when
    the service's anonymous_read is off (the page then asks for one). A run's files and
    other JSON route stay behind the token."""
    base = re.escape(f"{prefix}/web")
    tails = [
        "",
        "/flocks/[^/]+",
        "/runs",
        r"/runs/\d+",
        "/results",
        "/testcases/.+",
        "/static/[^/]+",
        "/api/whoami",  # the caller's own identity: how the page learns it must ask
    ]
    return [re.compile(base + tail) for tail in tails]


def uplot_dir() -> Path:
    return repo_root() / "node_modules" / "uplot" / "dist"


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": [{"msg": message, "type": kind}]}, status_code=status)


def make_router(
    settings: ServiceSettings,
    manager: FlockManager,
    auth: Authenticator,
    observer: Observer | None = None,
    triggers: TriggerService | None = None,
) -> APIRouter:
    import jinja2

    prefix = settings.prefix
    base = f"{prefix}/web"
    data = WebData(manager, observer, triggers)
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    if not (uplot_dir() / "uPlot.iife.min.js").is_file():
        log.warning(
            "web page: %s has no uPlot (run `make setup`): charts will not draw", uplot_dir()
        )
    store = observer.store if observer is not None else None
    router = APIRouter(include_in_schema=False)

    def page(name: str, **values: Any) -> HTMLResponse:
        html = templates.get_template(f"{name}.html").render(
            page=name,
            title=PAGES[name],
            prefix=prefix,
            base=base,
            has_runs=triggers is not None,
            windows=list(WINDOWS),
            **values,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    # -- pages

    @router.get(base)
    async def overview_page() -> Response:
        return page("overview")

    @router.get(base + "/flocks/{flock}")
    async def flock_page(flock: str) -> Response:
        return page("flock", flock=flock)

    @router.get(base + "/runs")
    async def runs_page() -> Response:
        return page("runs")

    @router.get(base + "/runs/{run_id}")
    async def run_page(run_id: int) -> Response:
        return page("run", run_id=run_id)

    @router.get(base + "/results")
    async def results_page() -> Response:
        return page("results")

    @router.get(base + "/testcases/{testcase:path}")
    async def testcase_page(testcase: str) -> Response:
        return page("testcase", testcase=testcase)

    # -- assets

    @router.get(base + "/static/{name}")
    async def asset(name: str) -> Response:
        if name in OWN_ASSETS:
            path, kind = HERE / "static" / name, OWN_ASSETS[name]
        elif name in UPLOT_ASSETS:
            path, kind = uplot_dir() / name, UPLOT_ASSETS[name]
        else:
            return _error(404, f"no asset {name!r}", "not_found")
        if not path.is_file():
            return _error(404, f"{path}: missing (run `make setup`)", "not_found")
        return FileResponse(path, media_type=kind, headers={"Cache-Control": ASSET_CACHE})

    # -- JSON

    @router.get(base + "/api/whoami")
    async def whoami(request: Request, flock: str | None = None) -> Response:
        """What the caller's token may do, so that the page enables only those buttons."""
        who = request.scope["state"]["identity"]
        configured = auth.configured
        return JSONResponse(
            {
                "name": who.name,
                "anonymous": who.anonymous,
                "scopes": list(who.scopes),
                "auth_file": configured,
                "may_read": not (who.anonymous and configured and not auth.anonymous_read),
                "may_change": configured and not who.anonymous and who.may_change(flock),
                "may_cancel": configured and (ADMIN in who.scopes or EVENTS in who.scopes),
            }
        )

    @router.get(base + "/api/overview")
    async def overview() -> Response:
        return JSONResponse(await data.overview())

    @router.get(base + "/api/flocks/{flock}")
    async def flock_row(flock: str) -> Response:
        found = manager.get_flock(flock)
        row = await data.flock(found)
        row["paused_labs"] = found.pause_mode if found.paused else None
        row["config"] = found.config.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        return JSONResponse(row)

    @router.get(base + "/api/flocks/{flock}/monkeys")
    async def monkeys(
        flock: str,
        state: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        return JSONResponse(data.monkeys(manager.get_flock(flock), state, limit, offset))

    @router.get(base + "/api/flocks/{flock}/series")
    async def series(
        flock: str, window: Literal["15m", "1h", "6h", "24h", "7d"] = "15m"
    ) -> Response:
        found = manager.get_flock(flock)
        if store is None:
            return _error(503, "this service records no events", "unavailable")
        return JSONResponse(await data.series(store, found, window))

    @router.get(base + "/api/runs/{run_id}")
    async def run_detail(run_id: int) -> Response:
        if triggers is None:
            return _error(404, "this service has no run queue", "not_found")
        try:
            run = await asyncio.to_thread(triggers.queue.get, run_id)
        except RunNotFound as exc:
            return _error(404, str(exc), "run_not_found")
        return JSONResponse(await asyncio.to_thread(describe, run.to_dict()))

    @router.get(base + "/runs/{run_id}/files/{path:path}")
    async def run_file(run_id: int, path: str) -> Response:
        if triggers is None:
            return _error(404, "this service has no run queue", "not_found")
        try:
            run = await asyncio.to_thread(triggers.queue.get, run_id)
            if not run.artifact_dir:
                raise OutsideRun(path)
            target = confined(Path(run.artifact_dir), path)
        except RunNotFound as exc:
            return _error(404, str(exc), "run_not_found")
        except OutsideRun:
            return _error(404, f"run {run_id}: no file {path!r} in its artifact dir", "not_found")
        kind = mimetypes.guess_type(target.name)[0]
        if target.suffix in TEXT_SUFFIXES or target.name.isupper() or kind is None:
            kind = "text/plain; charset=utf-8"  # logs, exit_code, FAILURE...
        return FileResponse(target, media_type=kind, headers=FILE_HEADERS)

    return router
