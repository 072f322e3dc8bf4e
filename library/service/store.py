"""What the service keeps across restarts: the flocks created over the API and which flocks
are paused, in one JSON file under the state dir, replaced atomically on every change (a
crash leaves the old file or the new one, never half of one)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from library.errors import UserError

log = logging.getLogger(__name__)
STATE_FILE = "flocks.json"
VERSION = 1


class FlockStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATE_FILE

    def load(self) -> dict[str, Any]:
        """``{"flocks": {name: {"config", "created_by"}}, "paused": [names]}``."""
        if not self.path.exists():
            return {"flocks": {}, "paused": []}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(
                f"{self.path}: unreadable service state ({exc}); move it away to start empty"
            ) from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise UserError(f"{self.path}: not a bosun service state file (version {VERSION})")
        return {"flocks": dict(data.get("flocks") or {}), "paused": list(data.get("paused") or [])}

    def save(self, flocks: dict[str, Any], paused: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = {"version": VERSION, "flocks": flocks, "paused": sorted(paused)}
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
