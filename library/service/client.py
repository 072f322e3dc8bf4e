"""A client of a running service (mobu's monkeyflocker): the same routes, one call each.

Plain ``urllib``: the client commands stay light and need nothing the toolbox lacks. An
answer of 4xx is the caller's mistake (UserError, exit 2, with the service's own message);
no answer or 5xx is a failure (CheckFailed, exit 1).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from library.errors import CheckFailed, UserError
from library.redact import register_secret
from library.urls import segment

DEFAULT_URL = "http://127.0.0.1:8080/mobu"
TIMEOUT_S = 300.0  # a DELETE waits for the labs to be deleted


def read_token(token_file: Path | None) -> str | None:
    if token_file is None:
        return None

    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserError(f"--token-file {token_file}: {exc.strerror}") from None
    if not token:
        raise UserError(f"--token-file {token_file}: the file is empty")
    register_secret(token)
    return token


class ServiceClient:
    def __init__(self, url: str | None, token: str | None = None) -> None:
        url = url or os.environ.get("BOSUN_SERVICE_URL") or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--url {url!r}: expected http(s)://HOST:PORT/PREFIX")
        self.url = url.rstrip("/")
        self.token = token
        self.last_headers: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                self.last_headers = dict(response.headers.items())
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            message = _message(exc.read())
            where = f"{method} {self.url}{path}"
            if exc.code < 500:
                raise UserError(f"{where}: {exc.code}: {message}") from None
            raise CheckFailed(f"{where}: {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CheckFailed(f"service at {self.url}: no answer ({reason})") from None

    def json(self, method: str, path: str, body: Any = None) -> Any:
        _, raw = self.call(method, path, body)
        return json.loads(raw) if raw else None

    # mobu's routes

    def flocks(self) -> list[str]:
        return self.json("GET", "/flocks")

    def start(self, flock: dict[str, Any]) -> dict[str, Any]:
        """PUT the flock; the service's notices (keys it ignored) are in `last_notice`."""
        return self.json("PUT", "/flocks", flock)

    @property
    def last_notice(self) -> str | None:
        return self.last_headers.get("X-Bosun-Notice") or self.last_headers.get("x-bosun-notice")

    def flock(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/flocks/{segment(name)}")

    def stop(self, name: str) -> None:
        self.call("DELETE", f"/flocks/{segment(name)}")

    def refresh(self, name: str) -> None:
        self.call("POST", f"/flocks/{segment(name)}/refresh")

    def pause(self, name: str, labs: str | None = None) -> dict[str, Any]:
        query = f"?labs={labs}" if labs else ""
        return self.json("POST", f"/flocks/{segment(name)}/pause{query}")

    def resume(self, name: str) -> dict[str, Any]:
        return self.json("POST", f"/flocks/{segment(name)}/resume")

    def summary(self, name: str | None = None) -> Any:
        return self.json("GET", f"/flocks/{segment(name)}/summary" if name else "/summary")

    def monkey_log(self, flock: str, monkey: str) -> str:
        _, raw = self.call("GET", f"/flocks/{segment(flock)}/monkeys/{segment(monkey)}/log")
        return raw.decode("utf-8", "replace")


def _message(raw: bytes) -> str:
    try:
        detail = json.loads(raw)["detail"]
        if isinstance(detail, list):
            first = detail[0]
            loc = ".".join(str(p) for p in first.get("loc") or [])
            return f"{loc}: {first['msg']}" if loc else first["msg"]
        return str(detail)
    except (ValueError, KeyError, IndexError, TypeError):
        return raw.decode("utf-8", "replace")[:200] or "(no message)"


def save_report(client: ServiceClient, name: str, out_dir: Path) -> dict[str, Any]:
    """monkeyflocker's report: the flock's JSON and summary, and per monkey its log and its
    stats (``USER_log.txt``, ``USER_stats.json``, monkeyflocker's names)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = client.flock(name)
    (out_dir / "flock.json").write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")
    summary = client.summary(name)
    # Not summary.json: that name is a scale run's summary (with its "kind") to the report.
    (out_dir / "flock_summary.json").write_text(
        json.dumps(summary, indent=4, sort_keys=True) + "\n"
    )
    for monkey in data["monkeys"]:
        user = monkey["name"]
        (out_dir / f"{user}_log.txt").write_text(client.monkey_log(name, user))
        (out_dir / f"{user}_stats.json").write_text(
            json.dumps(monkey, indent=4, sort_keys=True) + "\n"
        )
    return {"flock": name, "monkeys": len(data["monkeys"]), "summary": summary}
