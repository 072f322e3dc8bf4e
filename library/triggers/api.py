"""The triggers' routes on the service (mounted by its app factory):

- ``POST {prefix}/github/webhook``: GitHub deliveries. The ``X-Hub-Signature-256`` is checked
  on the raw body before anything parses it (bad or missing: 401, nothing recorded or
  queued); ``ping`` is answered; a delivery seen before (``X-GitHub-Delivery``) is answered
  as a duplicate and queues nothing; a ``push`` refreshes the notebook flocks on that branch;
  then the rules queue runs.
- ``POST {prefix}/events``: a generic JSON event ``{type, id?, ...fields}`` (Argo CD
  notifications, a pipeline, a cron), with a token holding the ``admin`` or ``events`` scope.
- ``GET {prefix}/runs`` (``?state=&event_id=&limit=``), ``GET {prefix}/runs/{id}``,
  ``POST {prefix}/runs/{id}/cancel`` (``admin`` or ``events``).
- ``GET {prefix}/results`` (``?testcase=&outcome=&since=&until=&data=KEY=VALUE&latest=
  &limit=``): ResultsDB's ``{"data": [results]}``.

Errors answer in the service's shape, ``{"detail": [{"msg", "type"}]}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from library.errors import UserError
from library.queue.store import RunFinished, RunNotFound
from library.results.store import ResultsStore, parse_when
from library.service.auth import ADMIN, AuthError, Identity
from library.triggers.events import from_data
from library.triggers.github import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    event_from_delivery,
    verify,
)

if TYPE_CHECKING:
    from library.triggers.service import TriggerService

log = logging.getLogger(__name__)
EVENTS_SCOPE = "events"


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": [{"msg": message, "type": kind}]}, status_code=status)


def _dump(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, indent=2, sort_keys=True, default=str),
        status_code=status,
        media_type="application/json",
    )


def make_router(triggers: TriggerService) -> APIRouter:
    prefix = triggers.settings.prefix
    router = APIRouter()

    def may_post(request: Request, action: str) -> str:
        auth = triggers.auth
        who: Identity | None = request.scope.get("state", {}).get("identity")
        if auth is None or not auth.configured:
            raise AuthError(403, f"{action}: this service has no auth file (--auth-file)")
        if who is None or who.anonymous:
            raise AuthError(401, f"{action}: a token is needed (Authorization: Bearer TOKEN)")
        if ADMIN not in who.scopes and EVENTS_SCOPE not in who.scopes:
            raise AuthError(403, f"{action}: needs the admin or events scope (token {who.name!r})")
        return who.name

    @router.post(f"{prefix}/github/webhook", summary="GitHub webhook deliveries")
    async def github_webhook(request: Request) -> Response:
        if triggers.secret is None:
            return _error(
                503, "the GitHub webhook is not configured (--github-secret-file)", "unavailable"
            )
        body = await request.body()
        if not verify(triggers.secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("github webhook: bad or missing %s; refused", SIGNATURE_HEADER)
            return _error(401, f"bad or missing {SIGNATURE_HEADER}", "bad_signature")
        name = request.headers.get(EVENT_HEADER)
        delivery = request.headers.get(DELIVERY_HEADER)
        if not name or not delivery or len(delivery) > 200:
            return _error(400, f"{EVENT_HEADER} and {DELIVERY_HEADER} are needed", "bad_request")
        if name == "ping":
            return _dump({"msg": "pong", "delivery": delivery})
        try:
            payload = json.loads(body)
            event = event_from_delivery(name, delivery, payload)
        except (ValueError, UserError) as exc:
            return _error(400, f"GitHub payload: {str(exc).splitlines()[0]}", "bad_request")
        try:
            accepted = await triggers.accept(event, f"github {name}")
        except UserError as exc:
            return _error(422, str(exc), "bad_event")
        refreshed: list[str] = []
        if name == "push" and not accepted.duplicate:
            refreshed = await triggers.refresh_for_push(event)
        return _dump({**accepted.to_dict(), "refreshed": refreshed}, 202)

    @router.post(f"{prefix}/events", summary="A generic event: type and fields")
    async def post_event(request: Request) -> Response:
        who = may_post(request, "post an event")
        body = await request.body()
        try:
            data = json.loads(body)
        except ValueError as exc:
            return _error(400, f"event body: not JSON ({exc})", "bad_request")
        try:
            event = from_data(data, "event")
            accepted = await triggers.accept(event, f"api {who}")
        except UserError as exc:
            return _error(422, str(exc), "bad_event")
        return _dump(accepted.to_dict(), 202)

    @router.get(f"{prefix}/runs", summary="Runs of the queue, newest first")
    async def list_runs(
        state: str | None = None,
        event_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> Response:
        try:
            runs = await asyncio.to_thread(triggers.queue.list, state, event_id, limit)
            counts = await asyncio.to_thread(triggers.queue.counts)
        except UserError as exc:
            return _error(422, str(exc), "bad_request")
        return _dump({"counts": counts, "runs": [r.to_dict() for r in runs]})

    @router.get(f"{prefix}/runs/{{run_id}}", summary="One run and its event")
    async def get_run(run_id: int) -> Response:
        try:
            run = (await asyncio.to_thread(triggers.queue.get, run_id)).to_dict()
        except RunNotFound as exc:
            return _error(404, str(exc), "run_not_found")
        run["event"] = await asyncio.to_thread(triggers.queue.event, run["event_id"])
        return _dump(run)

    @router.post(f"{prefix}/runs/{{run_id}}/cancel", summary="Cancel a queued or running run")
    async def cancel_run(run_id: int, request: Request) -> Response:
        who = may_post(request, "cancel a run")
        try:
            run = await asyncio.to_thread(triggers.queue.cancel, run_id, who)
        except RunNotFound as exc:
            return _error(404, str(exc), "run_not_found")
        except RunFinished as exc:
            return _error(409, str(exc), "conflict")
        triggers.executor.wake()
        return _dump(run.to_dict())

    @router.get(f"{prefix}/results", summary="Results (ResultsDB's model), newest first")
    async def get_results(
        testcase: str | None = None,
        outcome: Annotated[list[str] | None, Query()] = None,
        since: str | None = None,
        until: str | None = None,
        data: Annotated[list[str] | None, Query()] = None,
        group: str | None = None,
        latest: bool = False,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> Response:
        try:
            filters = {}
            for item in data or []:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise UserError(f"data {item!r}: expected KEY=VALUE")
                filters[key] = value

            def query() -> list[dict[str, Any]]:
                store = ResultsStore(triggers.results_url)
                try:
                    return store.query(
                        testcase=testcase,
                        outcome=[o.upper() for o in outcome] if outcome else None,
                        since=parse_when(since, "since") if since else None,
                        until=parse_when(until, "until") if until else None,
                        data=filters,
                        group=group,
                        latest=latest,
                        limit=limit,
                    )
                finally:
                    store.close()

            found = await asyncio.to_thread(query)
        except UserError as exc:
            return _error(422, str(exc), "bad_request")
        return _dump({"data": found})

    return router
