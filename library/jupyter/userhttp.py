"""One aiohttp session per user: its cookies, its XSRF token, its credentials."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from library.jupyter.errors import HubHTTPError
from library.jupyter.forms import looks_like_html, page_message

if TYPE_CHECKING:
    import aiohttp

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class UserHTTP:
    """HTTP for one identity. Cookies and the ``_xsrf`` token never cross to another user.

    ``connector`` may be shared by many users (one pool of sockets per process); the session
    does not own it then and leaves it open on close.
    """

    def __init__(
        self,
        token: str,
        *,
        user: str = "",
        connector: aiohttp.BaseConnector | None = None,
        total_timeout: float | None = None,
    ):
        import aiohttp

        self.user = user
        # unsafe=True: the sandbox lives on 127.0.0.1, and aiohttp drops cookies set by IP hosts
        # otherwise (which would lose the XSRF cookie).
        self.jar = aiohttp.CookieJar(unsafe=True)
        self.session = aiohttp.ClientSession(
            connector=connector,
            connector_owner=connector is None,
            cookie_jar=self.jar,
            # "bearer": what Gafaelfawr (Nublado) requires; JupyterHub and its labs accept it too.
            headers={"Authorization": f"bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=total_timeout),
        )

    def xsrf_headers(self) -> dict[str, str]:
        for cookie in self.jar:
            if cookie.key == "_xsrf":
                return {"X-XSRFToken": cookie.value}
        return {}

    def _headers(self, method: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {} if method in _SAFE_METHODS else self.xsrf_headers()
        if extra:
            headers.update(extra)
        return headers

    async def request(
        self,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        allow_redirects: bool = True,
    ) -> tuple[int, Any]:
        """(status, decoded JSON or text) for a status in OK, else HubHTTPError."""
        kwargs: dict[str, Any] = {
            "headers": self._headers(method, headers),
            "allow_redirects": allow_redirects,
        }
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, url, **kwargs) as resp:
            text = await resp.text()
            if resp.status not in ok:
                raise HubHTTPError(method, url, resp.status, _reason(text), user=self.user)
            if "json" in resp.headers.get("Content-Type", "") and text:
                try:
                    return resp.status, json.loads(text)
                except ValueError:
                    return resp.status, text
            return resp.status, text

    async def aclose(self) -> None:
        await self.session.close()


def _reason(text: str) -> str:
    """The hub's error message from a JSON body or an HTML page, else the start of the text."""
    if looks_like_html(text):
        return page_message(text)
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    except ValueError:
        pass
    return text[:200]
