"""Masking of secrets in arguments, configs and logs.

Two mechanisms, because neither alone is enough: values registered at run time (tokens read
from files or created through an API) are replaced wherever they appear, and strings stored
under secret-looking names (``token``, ``password``...) are masked by name even before anyone
registered them. A value that says it is secret (``is_secret``) is masked whatever its length.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from typing import Any

MASK = "***"

_SECRET_NAME = re.compile(
    r"(token|secret|password|passwd|credential|api[_-]?key|authorization|cookie|webhook)",
    re.IGNORECASE,
)
# Query parameters and header names that carry credentials (AWS/GCS signed URLs included).
_SECRET_PARAM = (
    r"[\w.-]*(?:token|secret|password|passwd|pwd|api[_-]?key|apikey|signature|credential|"
    r"auth|session)[\w.-]*"
)
_SECRET_HEADER = (
    r"(?:proxy-)?authorization|set-cookie|cookie|x-[\w-]*(?:token|key|secret|auth)[\w-]*|"
    r"[\w-]*-token|api-key|apikey"
)
# Shapes of secrets that may show up in text before anyone registered them. Each pattern keeps
# its group 1 (the name, the user, the host) and masks what follows.
_TEXT_PATTERNS = [
    # URL userinfo: scheme://user:PASSWORD@host, and scheme://TOKEN@host (no password part).
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/:@\"'<>]*:)[^\s/@\"'<>]+(?=@)"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)(?=[^\s/:@\"'<>]{20,}@)[^\s/:@\"'<>]+"),
    # Webhook URLs: the path is the credential (Slack, Discord, Teams, Mattermost, generic).
    re.compile(
        r"(?i)(\bhttps?://(?:hooks\.slack\.com|[^\s/\"'<>]*(?:discord(?:app)?\.com|webhook\.office\.com"
        r"|mattermost[^\s/\"'<>]*))/)[^\s\"'<>]+"
    ),
    re.compile(r"(?i)(\bhttps?://[^\s\"'<>]*?/(?:hooks|webhooks?)/)[^\s\"'<>]+"),
    # Authorization-like headers, in logs, options and YAML: `Authorization: Bearer X`.
    re.compile(
        rf"(?i)((?<![\w/-])(?:{_SECRET_HEADER})[\"']?\s*[:=]\s*[\"']?"
        r"(?:(?:token|bearer|basic|digest)\s+)?)[^\s\"',;}]+"
    ),
    # Token-bearing query parameters and form fields: `?access_token=X`, `&X-Amz-Signature=X`.
    re.compile(rf"(?i)((?:^|[?&;\s])(?:{_SECRET_PARAM})=)[^&\s\"'#<>]+"),
    re.compile(r"(?i)([?&](?:sig|key|code)=)[^&\s\"'#<>]+"),
    re.compile(
        r"(?i)([\"']?(?:token|password|secret|api_key)[\"']?\s*[:=]\s*[\"'])[^\"']+(?=[\"'])"
    ),
]
_MIN_SECRET_LEN = 6  # shorter values would mask ordinary words

# One registry shared by every context derived from the same root, so a token registered in a
# worker thread is masked in the main thread's logs too.
_registry: contextvars.ContextVar[set[str]] = contextvars.ContextVar(
    "bosun_secrets",
    default=set(),  # noqa: B039 - one set shared by every context, on purpose
)


def register_secret(value: str | None) -> None:
    """Mask this value wherever it appears from now on (logs, args, configs, result files)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        _registry.get().add(value)


@contextlib.contextmanager
def isolated_registry() -> Iterator[set[str]]:
    """Use a fresh, empty registry inside the block (tests, independent runs)."""
    token = _registry.set(set())
    try:
        yield _registry.get()
    finally:
        _registry.reset(token)


def is_secret_name(name: str) -> bool:
    """True when a key or argument name says it holds a secret."""
    return bool(_SECRET_NAME.search(name)) and not name.lower().endswith(("_file", "_path", "_env"))


def redact_text(text: str) -> str:
    """Replace registered secrets and secret-shaped fragments in text."""
    if not text:
        return text
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(_registry.get(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _TEXT_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_data(data: Any, key: str = "") -> Any:
    """A copy of a YAML/JSON-like structure with secrets masked by marker, name and value.

    A value marked secret (``is_secret``, as the config's ``Secret`` strings are) is masked
    whatever its length or key. By name, only strings are masked: a count such as
    ``max_input_tokens: 2047`` is not a credential. Data that came from the project config
    goes through ``config.mask`` instead, which masks by source only.
    """
    if getattr(data, "is_secret", False):
        return MASK
    if isinstance(data, dict):
        return {k: redact_data(v, str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v, key) for v in data]
    if key and is_secret_name(key) and isinstance(data, str) and data:
        return MASK
    if isinstance(data, str):
        return redact_text(data)
    return data
