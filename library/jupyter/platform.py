"""The hub and whose token to use, as the Jupyter client needs them: plain URL and tokens.

Built from a resolved `library.platform.Platform`; this module never looks anything up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from library import platform
from library.errors import UserError
from library.platform import JupyterHubTokens, Platform, StaticTokens, check_username
from library.platform_tokens import StaticProvider
from library.tokens import read_token


@dataclass(frozen=True)
class HubAccess:
    """A hub URL with either an admin token (it creates users) or per-user tokens."""

    hub_url: str
    admin_token: str | None = field(default=None, repr=False)
    user_tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def token_for(self, user: str) -> str | None:
        """USER's own token, or None when the admin token will mint one.

        USER must be a bot user name of the platform (``--user``): checked before any URL is
        built with it.
        """
        try:
            check_username(user)
        except ValueError as exc:
            raise UserError(f"--user: {exc}") from None
        if user in self.user_tokens:
            return self.user_tokens[user]
        if self.admin_token is None:
            raise UserError(
                f"no token for user {user} in the token file: add a line '{user}: TOKEN'"
            )
        return None


def hub_access(platform: Platform) -> HubAccess:
    """The hub part of PLATFORM: its URL and the tokens its token source holds."""
    hub_url = platform.require("hub_url")
    source = platform.tokens
    if isinstance(source, JupyterHubTokens):
        return HubAccess(hub_url, admin_token=read_token(source.admin_token_file))
    if isinstance(source, StaticTokens):
        provider = StaticProvider(source)
        return HubAccess(hub_url, user_tokens={u: provider.lookup(u) for u in provider.users()})
    if source is None:
        raise UserError(
            "no token for the hub: pass --token-file (an admin token, or 'user: token' lines) "
            "or set $BOSUN_TOKEN_FILE"
        )
    raise UserError(
        f"the {source.kind} token provider is not supported by this command: pass --token-file "
        "with an admin token or 'user: token' lines"
    )


def resolve(hub_url: str | None = None, token_file: Path | None = None) -> HubAccess:
    """For commands: ``--hub-url``/``--token-file``, else the environment, else the sandbox."""
    return hub_access(platform.resolve(hub_url=hub_url, token_file=token_file))
