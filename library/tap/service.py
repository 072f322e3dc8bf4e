"""Which TAP service a command talks to, and with which token."""

from __future__ import annotations

import os
from pathlib import Path

from library.errors import UserError


def resolve_url(service: str | None) -> str:
    """--service, else $BOSUN_TAP_URL, else the running sandbox's TAP service."""
    if service:
        return service
    if os.environ.get("BOSUN_TAP_URL"):
        return os.environ["BOSUN_TAP_URL"]
    from library import sandbox

    try:
        url = sandbox.endpoints().tap_url
    except UserError:
        url = None
    if not url:
        # The TAP half may run without the hub (tests, --no-hub setups): ask it directly.
        from library.sandbox import dachs
        from library.sandbox.state import state_dir

        url = dachs.status(state_dir()).get("url")
    if not url:
        raise UserError(
            "no TAP service: pass --service URL, set $BOSUN_TAP_URL, or start the sandbox "
            "with ./run_toolbox.py sandbox up"
        )
    return url


def read_token(token_file: Path | None) -> str | None:
    """The bearer token from --token-file, else from $BOSUN_TOKEN_FILE; None when neither."""
    path = token_file or (
        Path(os.environ["BOSUN_TOKEN_FILE"]) if os.environ.get("BOSUN_TOKEN_FILE") else None
    )
    if path is None:
        return None
    from library.tokens import read_token as read_token_file

    token = read_token_file(path)
    return token
