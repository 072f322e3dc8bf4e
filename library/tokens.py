"""Tokens from files and environment variables: read once, masked everywhere from then on.

A token file readable by group or others is used but warned about: on a shared CI machine
that is how tokens leak.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from library.errors import UserError
from library.redact import register_secret

log = logging.getLogger(__name__)


def read_secret_file(path: str | Path, option: str = "--token-file") -> str:
    """The text of a token file; one-line errors when missing or empty, a warning when loose."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{option} {path}: no such file; give a file holding a token") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise UserError(
            f"{option} {path}: cannot read it ({reason}); give a readable file holding a token"
        ) from None
    if not text.strip():
        raise UserError(f"{option} {path}: the file is empty; put a token in it")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "%s %s is readable by group or others (mode %03o): chmod 600 %s",
            option,
            path,
            stat.S_IMODE(mode),
            path,
        )
    for line in text.splitlines():
        # A `user: token` line registers its token part; a bare line is the token itself.
        register_secret(line.partition(":")[2].strip() if ":" in line else line.strip())
    return text


def read_token(path: str | Path, option: str = "--token-file") -> str:
    """A file holding one bare token."""
    return read_secret_file(path, option).strip()


def token_from_env(name: str) -> str | None:
    """The token in environment variable NAME (masked from now on), or None when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    register_secret(value)
    return value
