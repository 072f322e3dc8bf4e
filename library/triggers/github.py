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
import time
from pathlib import Path
from typing import Any

from library.errors import UserError
from library.redact import register_secret
from library.triggers.events import Event

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
DEFAULT_API_URL = "https://api.github.com"
MAX_ANNOTATIONS = 50  # per request, GitHub's limit
SUMMARY_MAX = 65535


def read_secret(path: Path, what: str = "--github-secret-file") -> bytes:
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


class StaticToken:
    """A token read from a file (a personal token, or an installation token kept fresh by
    something else)."""

    def __init__(self, token: str) -> None:
        self._token = token
        register_secret(token)

    @classmethod
    def from_file(cls, token_file: Path) -> StaticToken:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"github token file {token_file}: {exc.strerror}") from None
        if not token:
            raise UserError(f"github token file {token_file}: the file is empty")
        return cls(token)

    async def token(self, repository: str) -> str:
        return self._token


class AppTokens:
    """A GitHub App's installation tokens, as GitHub documents the exchange: a JWT signed
    with the app's private key (RS256, ``iss`` the app id, ten minutes at most) is traded for
    an installation access token (``POST /app/installations/{id}/access_tokens``), found
    from the repository (``GET /repos/{owner}/{repo}/installation``) unless given. Tokens are
    kept until five minutes before they expire."""

    def __init__(
        self, api_url: str, app_id: int, private_key: str, installation_id: int | None = None
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.app_id = app_id
        self.private_key = private_key
        self.installation_id = installation_id
        self._cache: dict[int, tuple[str, float]] = {}
        self._installations: dict[str, int] = {}
        register_secret(private_key)

    @classmethod
    def from_file(
        cls, api_url: str, app_id: int, key_file: Path, installation_id: int | None = None
    ) -> AppTokens:
        try:
            key = Path(key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"github private key file {key_file}: {exc.strerror}") from None
        if "PRIVATE KEY" not in key:
            raise UserError(f"github private key file {key_file}: not a PEM private key")
        return cls(api_url, app_id, key, installation_id)

    def app_jwt(self) -> str:
        import jwt

        now = int(time.time())
        # Backdated a minute against clock drift, as GitHub advises; nine minutes of life.
        claims = {"iat": now - 60, "exp": now + 540, "iss": str(self.app_id)}
        token = jwt.encode(claims, self.private_key, algorithm="RS256")
        register_secret(token)
        return token

    async def _app_call(self, method: str, path: str) -> dict[str, Any]:
        import httpx

        headers = {**_HEADERS, "Authorization": f"Bearer {self.app_jwt()}"}
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.request(method, self.api_url + path, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(
                f"GitHub {method} {path}: {response.status_code} {response.text[:200]}"
            )
        data: dict[str, Any] = response.json()
        return data

    async def token(self, repository: str) -> str:
        installation = self.installation_id or self._installations.get(repository)
        if installation is None:
            data = await self._app_call("GET", f"/repos/{repository}/installation")
            installation = self._installations[repository] = int(data["id"])
        cached = self._cache.get(installation)
        if cached is not None and cached[1] - 300 > time.time():
            return cached[0]
        data = await self._app_call("POST", f"/app/installations/{installation}/access_tokens")
        token = str(data["token"])
        register_secret(token)
        expires = dt.datetime.fromisoformat(str(data["expires_at"]).replace("Z", "+00:00"))
        self._cache[installation] = (token, expires.timestamp())
        return token


_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "bosun",
}


class CheckRuns:
    """GitHub's check-run API, with a token from a file or a GitHub App's installation."""

    def __init__(
        self, api_url: str, tokens: StaticToken | AppTokens, name: str = "bosun notebooks"
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self.name = name

    @classmethod
    def from_file(cls, api_url: str, token_file: Path, name: str) -> CheckRuns:
        return cls(api_url, StaticToken.from_file(token_file), name)

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        repository = "/".join(path.split("/")[2:4])
        token = await self.tokens.token(repository)
        headers = {**_HEADERS, "Authorization": f"Bearer {token}"}
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
