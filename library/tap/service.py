"""Which TAP service a command talks to, and with which token."""

from __future__ import annotations

import os
from pathlib import Path

from library import platform
from library.tokens import read_token as read_token_file


def resolve_url(service: str | None) -> str:
    """--service, else $BOSUN_TAP_URL, else the running sandbox's TAP service (for commands)."""
    return platform.resolve(tap_url=service).require("tap_url", "--service")


def read_token(token_file: Path | None) -> str | None:
    """The bearer token from --token-file, else from $BOSUN_TOKEN_FILE; None when neither."""
    path = token_file or (
        Path(os.environ["BOSUN_TOKEN_FILE"]) if os.environ.get("BOSUN_TOKEN_FILE") else None
    )
    if path is None:
        return None

    token = read_token_file(path)
    return token
