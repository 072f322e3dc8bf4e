"""Where the hub is and whose token to use: options, then environment, then the sandbox."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Platform:
    """A hub URL with either an admin token (it creates users) or per-user tokens."""

    hub_url: str
    admin_token: str | None = None
    user_tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def token_for(self, user: str) -> str | None:
        """USER's own token, or None when the admin token will mint one."""
        from library.errors import UserError

        if user in self.user_tokens:
            return self.user_tokens[user]
        if self.admin_token is None:
            raise UserError(
                f"no token for user {user} in the token file: add a line '{user}: TOKEN'"
            )
        return None


def resolve(hub_url: str | None = None, token_file: Path | None = None) -> Platform:
    """``--hub-url``/``--token-file``, else $BOSUN_HUB_URL/$BOSUN_TOKEN_FILE, else the sandbox.

    A token file holding one bare token is an admin token; lines ``user: token`` are the
    tokens of those users (a real platform, where bot users exist already).
    """
    from library.errors import UserError
    from library.redact import register_secret
    from library.tokens import read_secret_file

    hub_url = hub_url or os.environ.get("BOSUN_HUB_URL") or None
    env_file = os.environ.get("BOSUN_TOKEN_FILE")
    token_file = token_file or (Path(env_file) if env_file else None)
    # What the caller named is checked first: a bad token file is reported as such, not as a
    # sandbox that is not running.
    text = read_secret_file(token_file) if token_file is not None else None
    if hub_url is None or token_file is None:
        from library import sandbox

        ep = sandbox.endpoints()
        hub_url = hub_url or ep.hub_url
        token_file = token_file or ep.token_file
    if text is None:
        text = read_secret_file(token_file)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) == 1 and ":" not in lines[0]:
        register_secret(lines[0])
        return Platform(hub_url, admin_token=lines[0])
    users = {}
    for n, line in enumerate(lines, start=1):
        user, sep, token = line.partition(":")
        if not sep or not user.strip() or not token.strip():
            raise UserError(f"--token-file {token_file} line {n}: expected 'user: token'")
        register_secret(token.strip())
        users[user.strip()] = token.strip()
    return Platform(hub_url, user_tokens=users)
