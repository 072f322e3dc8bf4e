"""An end-to-end check of the running sandbox: hub REST API, a bot user with a token, TAP."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

from library import urls
from library.errors import CheckFailed, UserError
from library.platform import check_username
from library.redact import register_secret
from library.sandbox import endpoints, hub

log = logging.getLogger(__name__)

DEFAULT_TABLE = "sandbox.objects"


def run(user: str, tap: bool = True, table: str = DEFAULT_TABLE) -> dict:
    try:
        check_username(user)
    except ValueError as exc:
        raise UserError(f"--user: {exc}") from None
    ep = endpoints()
    result: dict = {"hub_url": ep.hub_url, "tap_url": ep.tap_url}

    t0 = time.perf_counter()
    info = hub.api_json(f"{ep.hub_api_url}/", ep.token)
    result["hub_version"] = info.get("version")
    result["hub_api_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    anonymous = hub.api_status(f"{ep.hub_api_url}/users", token=None)
    if anonymous not in (401, 403):
        raise CheckFailed(f"the hub answered {anonymous} to an anonymous GET /hub/api/users")
    log.info(
        "hub %s answers (%.0f ms); anonymous request refused with %d",
        info.get("version"),
        result["hub_api_ms"],
        anonymous,
    )

    quoted = urls.segment(user)
    try:
        hub.api_json(f"{ep.hub_api_url}/users/{quoted}", ep.token, method="POST")
        result["user_created"] = True
    except urllib.error.HTTPError as exc:
        if exc.code != 409:  # 409: the user exists from an earlier check
            raise CheckFailed(f"creating hub user {user} failed with HTTP {exc.code}") from None
        result["user_created"] = False
    token_model = _post_json(
        f"{ep.hub_api_url}/users/{quoted}/tokens",
        ep.token,
        {"note": "bosun sandbox check", "expires_in": 3600},
    )
    register_secret(token_model["token"])
    whoami = hub.api_json(f"{ep.hub_api_url}/user", token_model["token"])
    if whoami.get("name") != user:
        raise CheckFailed(f"the new token of {user} authenticates as {whoami.get('name')!r}")
    result["user"] = user
    log.info("bot user %s has a working token", user)

    if tap:
        if ep.tap_url is None:
            raise UserError(
                "the sandbox runs without its TAP service: restart it with "
                "./run_toolbox.py sandbox up (without --no-tap), or pass --no-tap"
            )
        result.update(count_rows(ep.tap_url, table))
    return result


def count_rows(tap_url: str, table: str) -> dict:
    """SELECT COUNT(*) on TABLE through pyvo."""
    import pyvo

    t0 = time.perf_counter()
    try:
        rows = pyvo.dal.TAPService(tap_url).run_sync(f"SELECT COUNT(*) AS n FROM {table}")
    except pyvo.dal.DALServiceError as exc:
        raise CheckFailed(f"TAP query on {table} at {tap_url} failed: {exc}") from None
    count = int(rows.to_table()[0][0])
    elapsed = round((time.perf_counter() - t0) * 1000, 1)
    if count <= 0:
        raise CheckFailed(f"TAP table {table} at {tap_url} is empty")
    log.info("TAP: %s has %d rows (%.0f ms)", table, count, elapsed)
    return {"tap_table": table, "tap_count": count, "tap_query_ms": elapsed}


def _post_json(url: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode())
    request.add_header("Authorization", f"token {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
