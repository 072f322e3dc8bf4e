"""GitHub's side: webhook signatures, events from deliveries, check runs.

- ``verify(secret, body, header)``: ``X-Hub-Signature-256`` is ``sha256=`` and the hex
  HMAC-SHA256 of the raw body under the webhook secret; compared in constant time, on the
  bytes as received, before anything parses them.
- ``CheckRuns``: GitHub's check-run API (``POST /repos/{owner}/{repo}/check-runs``, ``PATCH
  /repos/{owner}/{repo}/check-runs/{id}``), with a token (an app installation token or a
  personal token) read from a file, at most 50 annotations per request as GitHub accepts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

from library.errors import UserError
from library.triggers.events import Event

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
DEFAULT_API_URL = "https://api.github.com"
MAX_ANNOTATIONS = 50  # per request, GitHub's limit
SUMMARY_MAX = 65535


def read_secret(path: Path, what: str = "--github-secret-file") -> bytes:
    from library.redact import register_secret

    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserError(f"{what} {path}: {exc.strerror}") from None
    if not secret:
        raise UserError(f"{what} {path}: the file is empty")
    register_secret(secret)
    return secret.encode()


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def event_from_delivery(name: str, delivery: str, payload: Any) -> Event:
    """``github.<event>`` with the payload's fields; the delivery id is the event's id."""
    if not isinstance(payload, dict):
        raise UserError("GitHub payload: expected a JSON object")
    fields = {k: v for k, v in payload.items() if k not in ("type", "id")}
    return Event(f"github:{delivery}", f"github.{name}", fields)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CheckRuns:
    """GitHub's check-run API for one token."""

    def __init__(self, api_url: str, token: str, name: str = "bosun notebooks") -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.name = name

    @classmethod
    def from_file(cls, api_url: str, token_file: Path, name: str) -> CheckRuns:
        from library.redact import register_secret

        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"github token file {token_file}: {exc.strerror}") from None
        if not token:
            raise UserError(f"github token file {token_file}: the file is empty")
        register_secret(token)
        return cls(api_url, token, name)

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self.token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "bosun",
        }
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.request(
                method, self.api_url + path, headers=headers, content=json.dumps(body)
            )
        if response.status_code >= 300:
            raise RuntimeError(
                f"GitHub {method} {path}: {response.status_code} {response.text[:200]}"
            )
        return response.json() if response.content else {}

    async def create(self, repository: str, head_sha: str, details_url: str | None = None) -> int:
        body: dict[str, Any] = {
            "name": self.name,
            "head_sha": head_sha,
            "status": "in_progress",
            "started_at": _now(),
        }
        if details_url:
            body["details_url"] = details_url
        data = await self._call("POST", f"/repos/{repository}/check-runs", body)
        return int(data["id"])

    async def complete(
        self,
        repository: str,
        check_id: int,
        conclusion: str,
        title: str,
        summary: str,
        annotations: list[dict[str, Any]],
    ) -> None:
        batches = [
            annotations[i : i + MAX_ANNOTATIONS]
            for i in range(0, len(annotations), MAX_ANNOTATIONS)
        ] or [[]]
        for index, batch in enumerate(batches):
            body: dict[str, Any] = {
                "output": {
                    "title": title,
                    "summary": summary[:SUMMARY_MAX],
                    "annotations": batch,
                }
            }
            if index == len(batches) - 1:
                body.update(status="completed", conclusion=conclusion, completed_at=_now())
            await self._call("PATCH", f"/repos/{repository}/check-runs/{check_id}", body)


def notebook_annotations(run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """One annotation per failing notebook of a run (path, cell, error), from the
    ``notebooks.json`` its notebook commands wrote; and how many notebooks ran."""
    annotations: list[dict[str, Any]] = []
    total = 0
    for path in sorted(Path(run_dir).rglob("notebooks.json")):
        try:
            outcomes = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for outcome in outcomes if isinstance(outcomes, list) else []:
            total += 1
            if outcome.get("ok"):
                continue
            cell = outcome.get("cell")
            where = f"cell {cell}" if cell is not None else "the notebook"
            annotations.append(
                {
                    "path": str(outcome.get("notebook")),
                    "start_line": 1,
                    "end_line": 1,
                    "annotation_level": "failure",
                    "title": f"{outcome.get('error_class') or 'Error'} in {where}",
                    "message": str(outcome.get("error") or "failed")[:1000],
                }
            )
    return annotations, total
