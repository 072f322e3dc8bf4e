"""One way to put a value into a URL path: ``segment(value)``.

Names from outside (flock users, a hub's server names, kernel ids) become one path segment:
every reserved character is escaped (``/`` too, so ``bot-x/../alice`` stays one segment), and
``.``/``..`` and the empty name, which clients normalise away, are refused.
"""

from __future__ import annotations

from urllib.parse import quote


def segment(value: str) -> str:
    """VALUE as one URL path segment; ValueError for a value that cannot be one."""
    if value in ("", ".", ".."):
        raise ValueError(f"{value!r} cannot be a URL path segment")
    return quote(value, safe="")
