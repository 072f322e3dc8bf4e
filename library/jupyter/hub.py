"""The hub as an administrator sees it: users and their tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urljoin

from library import urls
from library.errors import UserError
from library.jupyter.errors import HubHTTPError
from library.jupyter.lab import LabSession
from library.jupyter.userhttp import UserHTTP
from library.platform import check_username
from library.redact import register_secret

if TYPE_CHECKING:
    import aiohttp

    from library.jupyter.timing import TimingRecorder


class HubClient:
    """Hands out one LabSession per user.

    Admin (sandbox) mode: ``admin_token`` may create users and mint their tokens. Real platform
    mode: pass each user's own token to ``lab_session`` and no admin token at all.
    """

    def __init__(
        self,
        hub_url: str,
        admin_token: str | None = None,
        *,
        connector: aiohttp.BaseConnector | None = None,
        recorder: TimingRecorder | None = None,
        token_expiry_s: int = 3600,
    ):
        self.hub_url = hub_url if hub_url.endswith("/") else hub_url + "/"
        self.connector = connector
        self.recorder = recorder
        self.token_expiry_s = token_expiry_s
        self._admin = (
            UserHTTP(admin_token, connector=connector) if admin_token is not None else None
        )

    def _api(self, path: str) -> str:
        return urljoin(self.hub_url, "hub/api/" + path)

    def _require_admin(self) -> UserHTTP:
        if self._admin is None:
            raise ValueError("this HubClient has no admin token; pass the user's own token")
        return self._admin

    async def create_user(self, user: str) -> bool:
        """Create USER (a bot user: the only kind bosun creates); False when it existed."""
        try:
            check_username(user)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        try:
            await self._require_admin().request(
                "POST", self._api(f"users/{urls.segment(user)}"), ok=(201,)
            )
            return True
        except HubHTTPError as exc:
            if exc.status == 409:
                return False
            raise

    async def create_token(self, user: str, note: str = "bosun") -> str:
        """A fresh API token for USER, registered with the redactor before anyone sees it."""
        _, model = await self._require_admin().request(
            "POST",
            self._api(f"users/{urls.segment(user)}/tokens"),
            json_body={"note": note, "expires_in": self.token_expiry_s},
        )
        token = str(model["token"])
        register_secret(token)
        return token

    async def lab_session(self, user: str, token: str | None = None) -> LabSession:
        """A LabSession for USER: with TOKEN as given, or (admin mode) a new user and token."""
        if token is None:
            await self.create_user(user)
            token = await self.create_token(user)
        return LabSession(
            self.hub_url, user, token, connector=self.connector, recorder=self.recorder
        )

    async def aclose(self) -> None:
        if self._admin is not None:
            await self._admin.aclose()
