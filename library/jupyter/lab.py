"""One user's lab: spawn it, watch it start, open kernels in it, delete it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from library import urls
from library.artifacts import Operation
from library.errors import UserError
from library.jupyter.errors import (
    DeleteTimeout,
    HubHTTPError,
    SpawnFailed,
    SpawnTimeout,
    safe_url,
)
from library.jupyter.forms import looks_like_html, page_message, parse_page
from library.jupyter.messages import parse_progress_line
from library.jupyter.timing import NoRecorder
from library.jupyter.userhttp import UserHTTP
from library.platform import check_username

if TYPE_CHECKING:
    import aiohttp

    from library.jupyter.kernel import Kernel
    from library.jupyter.timing import TimingRecorder

SpawnVia = Literal["api", "form"]


@dataclass
class SpawnForm:
    """The hub's spawn form as fetched by one user: where it posts, and what it offers.

    ``fields`` maps each field name to the values the form offers (radio buttons, select
    options; empty for free text). ``xsrf`` is the value of the user's ``_xsrf`` cookie,
    sent back as the ``_xsrf`` field and the ``X-XSRFToken`` header.
    """

    action: str
    fields: dict[str, list[str]]
    xsrf: str = field(repr=False)


@dataclass
class SpawnResult:
    """How a spawn went: the progress log with timestamps and where the time went."""

    user: str
    already_running: bool
    duration_s: float
    # Seconds between the hub's ready event and spawn_lab returning: the client's own share.
    client_overhead_s: float
    progress: list[dict[str, Any]] = field(default_factory=list)
    lab_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "already_running": self.already_running,
            "duration_s": round(self.duration_s, 6),
            "client_overhead_s": round(self.client_overhead_s, 6),
            "lab_url": self.lab_url,
            "progress": self.progress,
        }


class LabSession:
    """Everything one user does on the platform, over that user's own HTTP session.

    ``hub_url`` is the public base of the hub (``http://127.0.0.1:8700/``, or
    ``https://data.example.org/nb/`` on Nublado); the REST API is under ``hub/api/`` and the
    labs under ``user/NAME/`` unless the hub reports another URL for the server.
    """

    def __init__(
        self,
        hub_url: str,
        user: str,
        token: str,
        *,
        connector: aiohttp.BaseConnector | None = None,
        recorder: TimingRecorder | None = None,
    ):
        # A name that is not the platform's shape never reaches a URL (and so can never
        # address another user's lab), whatever the caller checked before.
        try:
            check_username(user, bot=False)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.user = user
        self.hub_url = hub_url if hub_url.endswith("/") else hub_url + "/"
        self.http = UserHTTP(token, user=user, connector=connector)
        self._rec: TimingRecorder = recorder if recorder is not None else NoRecorder()
        self._lab_url = urljoin(self.hub_url, f"user/{urls.segment(user)}/")

    # --- URLs ---------------------------------------------------------------------------

    def hub_api(self, path: str) -> str:
        return urljoin(self.hub_url, "hub/api/" + path)

    def lab_api(self, path: str) -> str:
        return urljoin(self._lab_url, "api/" + path)

    @property
    def lab_url(self) -> str:
        return self._lab_url

    def _set_lab_url(self, url: str) -> None:
        if url:
            self._lab_url = urljoin(self.hub_url, url if url.endswith("/") else url + "/")

    # --- status -------------------------------------------------------------------------

    async def server_status(self) -> dict[str, Any] | None:
        """The hub's model of the user's default server, or None when there is none."""
        _, model = await self.http.request("GET", self.hub_api(f"users/{urls.segment(self.user)}"))
        server = (model.get("servers") or {}).get("")
        if server and server.get("url"):
            self._set_lab_url(server["url"])
        return server

    async def lab_running(self) -> bool:
        server = await self.server_status()
        return bool(server and server.get("ready"))

    # --- spawn --------------------------------------------------------------------------

    async def spawn_lab(
        self,
        *,
        timeout: float = 120.0,
        via: SpawnVia = "api",
        image: str | None = None,
        size: str | None = None,
        image_field: str = "image_list",
        form_fields: dict[str, str] | None = None,
    ) -> SpawnResult:
        """Start the lab and wait until the hub says it is ready.

        ``via="api"`` posts ``{image, size}`` as user options to the REST API; ``via="form"``
        submits the Nublado spawn form (``image_field`` is ``image_list``, ``image_tag`` or
        ``image_class``) with the XSRF token from the hub's ``_xsrf`` cookie; ``form_fields``
        (``via="form"``) are posted as given instead, as mobu posts its image's
        ``to_spawn_form()``, and a hub without a spawn form is then an error, never a lab
        with the hub's default image. A lab that is already running is reported as such,
        not restarted.
        """
        with self._rec.timed(Operation.SPAWN_LAB, monkey=self.user, target=via):
            return await self._spawn(timeout, via, image, size, image_field, form_fields)

    async def _spawn(
        self,
        timeout: float,
        via: SpawnVia,
        image: str | None,
        size: str | None,
        image_field: str,
        form_fields: dict[str, str] | None = None,
    ) -> SpawnResult:
        started = time.perf_counter()
        progress: list[dict[str, Any]] = []
        last = {"message": ""}
        server = await self.server_status()
        if server and server.get("ready"):
            return SpawnResult(
                self.user, True, time.perf_counter() - started, 0.0, [], self.lab_url
            )
        try:
            async with asyncio.timeout(timeout):
                if not (server and server.get("pending") == "spawn"):
                    await self._request_spawn(via, image, size, image_field, form_fields)
                ready_at = await self._follow_progress(started, progress, last)
                await self._check_lab()
        except TimeoutError:
            raise SpawnTimeout(self.user, timeout, last["message"], progress) from None
        end = time.perf_counter()
        return SpawnResult(self.user, False, end - started, end - ready_at, progress, self.lab_url)

    async def _request_spawn(
        self,
        via: SpawnVia,
        image: str | None,
        size: str | None,
        image_field: str,
        form_fields: dict[str, str] | None = None,
    ) -> None:
        if via == "form":
            await self._spawn_form(image, size, image_field, form_fields)
            return
        options = {k: v for k, v in (("image", image), ("size", size)) if v}
        try:
            await self.http.request(
                "POST", self.hub_api(f"users/{urls.segment(self.user)}/server"), json_body=options
            )
        except HubHTTPError as exc:
            # Lost a race with another starter: the progress stream still tells when it is up.
            if not (exc.status == 400 and "already" in exc.reason.lower()):
                raise

    async def _spawn_form(
        self,
        image: str | None,
        size: str | None,
        image_field: str,
        form_fields: dict[str, str] | None = None,
    ) -> None:
        form = await self.open_spawn_form()
        if form is None:
            if form_fields:
                raise SpawnFailed(
                    self.user,
                    "the hub has no spawn form, so it cannot spawn the image asked for "
                    f"({', '.join(f'{k}={v}' for k, v in form_fields.items())})",
                )
            # A hub without a spawn form starts the lab on GET /hub/spawn (default options).
            return
        fields = dict(form_fields or {})
        if image and not form_fields:
            fields[image_field] = image
        if size and not form_fields:
            fields["size"] = size
        missing = [name for name in fields if name not in form.fields]
        if missing:
            raise SpawnFailed(
                self.user,
                f"the spawn form at {safe_url(form.action)} has no field "
                f"{', '.join(missing)} (it has {', '.join(form.fields) or 'none'})",
            )
        await self.submit_spawn_form(form, fields)

    async def open_spawn_form(self) -> SpawnForm | None:
        """GET the hub's spawn page, logging in on the way; None when no form came back.

        A hub page without a session sends the user to ``hub/login``, which logs the user
        in from the bearer token (Nublado: Gafaelfawr's header; the sandbox: the token
        itself) and comes back with the session cookies and ``_xsrf``. None means the hub
        has no options form and started the lab with its defaults instead.
        """
        url = urljoin(self.hub_url, "hub/spawn")
        async with self.http.session.get(url) as resp:
            text = await resp.text()
            final = str(resp.url)
            if resp.status != 200:
                # The hop that failed (e.g. hub/login refusing the token) is the one to name.
                raise HubHTTPError("GET", final, resp.status, _page_reason(text), user=self.user)
        page = parse_page(text)
        if page.form_action is None:
            if urlsplit(final).path.rstrip("/") == urlsplit(url).path.rstrip("/"):
                raise SpawnFailed(self.user, f"no spawn form on {safe_url(final)}")
            return None
        action_parts = urlsplit(urljoin(final, page.form_action))
        query = [(k, v) for k, v in parse_qsl(action_parts.query) if k != "_xsrf"]
        action = urlunsplit(action_parts._replace(query=urlencode(query), fragment=""))
        xsrf = self.http.xsrf_headers().get("X-XSRFToken")
        if not xsrf:
            raise SpawnFailed(self.user, f"the hub set no _xsrf cookie on {safe_url(final)}")
        return SpawnForm(action=action, fields=page.fields, xsrf=xsrf)

    async def submit_spawn_form(self, form: SpawnForm, fields: dict[str, str]) -> str:
        """POST FIELDS to the spawn form with its XSRF token; the URL the hub redirects to.

        The hub answers a started spawn with a redirect (to ``hub/spawn-pending/USER``);
        anything else (the form again with an error line, an error page) is a HubHTTPError
        carrying the hub's message.
        """
        data = {**fields, "_xsrf": form.xsrf}
        async with self.http.session.post(
            form.action,
            data=data,
            headers={"X-XSRFToken": form.xsrf},
            allow_redirects=False,
        ) as resp:
            text = await resp.text()
            location = resp.headers.get("Location", "")
            if resp.status in (302, 303) and "/login" not in urlsplit(location).path:
                return urljoin(form.action, location)
            if resp.status in (302, 303):
                reason = "sent to the login page: the hub session was not accepted"
            elif resp.status == 200:
                reason = "the hub showed the form again: " + _page_reason(text)
            else:
                reason = _page_reason(text)
            raise HubHTTPError("POST", form.action, resp.status, reason, user=self.user)

    async def _follow_progress(
        self, started: float, progress: list[dict[str, Any]], last: dict[str, str]
    ) -> float:
        """Read the progress stream until ready; the perf_counter time ready arrived."""
        url = self.hub_api(f"users/{urls.segment(self.user)}/server/progress")
        async with self.http.session.get(url, headers={"Accept": "text/event-stream"}) as resp:
            if resp.status != 200:
                raise HubHTTPError(
                    "GET", url, resp.status, (await resp.text())[:200], user=self.user
                )
            async for raw in resp.content:
                event = parse_progress_line(raw.decode("utf-8", "replace"))
                if event is None:
                    continue
                now = time.perf_counter()
                progress.append(
                    {
                        "t_s": round(now - started, 6),
                        "time": time.time(),
                        "progress": event.progress,
                        "message": event.message,
                        "ready": event.ready,
                        "failed": event.failed,
                    }
                )
                if event.message:
                    last["message"] = event.message
                if event.failed:
                    raise SpawnFailed(self.user, event.message or "hub reported failure", progress)
                if event.ready:
                    self._set_lab_url(event.url)
                    return now
        # The stream ends without a ready event when the spawn finished or died in between.
        server = await self.server_status()
        if server and server.get("ready"):
            return time.perf_counter()
        raise SpawnFailed(
            self.user, last["message"] or "progress stream ended, lab not running", progress
        )

    async def _check_lab(self) -> None:
        """The lab itself answers (and, on Nublado, hands out its own cookies)."""
        await self.http.request("GET", self.lab_api("status"))

    # --- delete -------------------------------------------------------------------------

    async def delete_lab(self, *, timeout: float = 60.0, poll: float = 0.25) -> float:
        """Stop the lab and wait until the hub no longer lists it; seconds it took."""
        with self._rec.timed(Operation.DELETE_LAB, monkey=self.user):
            started = time.perf_counter()
            url = self.hub_api(f"users/{urls.segment(self.user)}/server")
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        try:
                            await self.http.request("DELETE", url, ok=(202, 204))
                            break
                        except HubHTTPError as exc:
                            # A spawn still in progress must end before the hub will stop it.
                            if exc.status == 400 and "pending" in exc.reason.lower():
                                await asyncio.sleep(poll)
                                continue
                            raise
                    while await self.server_status() is not None:
                        await asyncio.sleep(poll)
            except TimeoutError:
                raise DeleteTimeout(self.user, timeout) from None
            return time.perf_counter() - started

    # --- kernels ------------------------------------------------------------------------

    async def open_kernel(self, *, kernel_name: str = "python3", path: str = "") -> Kernel:
        """Start a kernel session in the lab and connect to its websocket."""
        from library.jupyter.kernel import MAX_FRAME, Kernel, new_session_id

        path = path or f"bosun-{new_session_id()[:8]}.ipynb"
        _, model = await self.http.request(
            "POST",
            self.lab_api("sessions"),
            json_body={
                "path": path,
                "name": path,
                "type": "notebook",
                "kernel": {"name": kernel_name},
            },
        )
        kernel_id = model["kernel"]["id"]
        client_session = new_session_id()
        ws_url = self.lab_api(f"kernels/{kernel_id}/channels")
        ws_url = "ws" + ws_url[len("http") :]
        ws = await self.http.session.ws_connect(
            ws_url,
            params={"session_id": client_session},
            headers=self.http.xsrf_headers(),
            max_msg_size=MAX_FRAME,
            heartbeat=30,
        )
        return Kernel(self, kernel_id, model["id"], client_session, ws, self._rec, path)

    async def aclose(self) -> None:
        await self.http.aclose()


def _page_reason(text: str) -> str:
    return page_message(text) if looks_like_html(text) else text[:200]
