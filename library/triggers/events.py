"""An event: a ``type`` and fields, with an id that makes a second delivery of it a duplicate.

Events come from a file (``trigger match|fire --event FILE``), from ``POST {prefix}/events``
(the fields of a JSON body) or from a GitHub webhook (``type: github.<X-GitHub-Event>``, the
payload's fields, id ``github:<X-GitHub-Delivery>``). Field values are data: nothing here or
downstream renders them as templates.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from library import yamlio
from library.errors import UserError

# A dotted field path: names of mapping keys, or list indexes, separated by dots.
PATH_RE = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
TYPE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
MAX_ID = 200
MISSING = object()


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    fields: dict[str, Any]

    def get(self, path: str) -> Any:
        """The value at a dotted path (``repository.full_name``, ``commits.0.id``), or MISSING."""
        return get_path({"type": self.type, **self.fields}, path)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "fields": self.fields}


def check_path(path: Any, where: str) -> str:
    """A field path as rules write it; UserError naming WHERE for anything else."""
    if not isinstance(path, str) or not PATH_RE.fullmatch(path):
        raise UserError(
            f"{where}: bad field path {path!r}: expected dotted names such as "
            "repository.full_name (letters, digits, _ and -, list items by number)"
        )
    return path


def get_path(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if isinstance(node, dict):
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            index = int(part)
            if index >= len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def content_id(type_: str, fields: dict[str, Any]) -> str:
    """An id for an event that brings none: the hash of its content (same content, same id)."""
    canonical = json.dumps({"type": type_, "fields": fields}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def from_data(data: Any, source: str) -> Event:
    """An event from a mapping ``{type, id?, ...fields}``; UserError naming SOURCE."""
    if not isinstance(data, dict):
        raise UserError(
            f"{source}: an event is a mapping with a 'type' and its fields, "
            f"got {type(data).__name__}"
        )
    fields = dict(data)
    type_ = fields.pop("type", None)
    if not isinstance(type_, str) or not TYPE_RE.fullmatch(type_):
        raise UserError(
            f"{source}: 'type' must be a name such as deploy.finished "
            f"(letters, digits, '.', ':', '_', '-'), got {type_!r}"
        )
    event_id = fields.pop("id", None)
    if event_id is None:
        event_id = content_id(type_, fields)
    elif not isinstance(event_id, (str, int)) or not 0 < len(str(event_id)) <= MAX_ID:
        raise UserError(f"{source}: 'id' must be a string of 1-{MAX_ID} characters")
    for key in fields:
        if not isinstance(key, str):
            raise UserError(f"{source}: field names are strings, got {key!r}")
    return Event(str(event_id), type_, fields)


def load_file(path: Path) -> Event:
    """An event file: YAML or JSON (JSON is YAML), through the bounded loader."""
    return from_data(yamlio.loads(yamlio.read_text(path, "event file"), str(path)), str(path))
