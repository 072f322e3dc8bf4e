"""The sandbox's Git LFS server: giftless (the server Phalanx deploys) with local storage.

Two doors onto one store, as Phalanx has a read-only and a read-write host: under ``/ro/``
everyone may read and no one may write; under ``/rw/`` every request needs a token (401
without one, so the git-lfs client asks its credential helper, as behind Gafaelfawr). The
token is checked against the sandbox hub (`GET /hub/api/user` with it), so a bot user's hub
token is its LFS credential, sent by git-lfs as HTTP Basic ``gituser:TOKEN`` (mobu's
credential store) or as a bearer token. Objects live in the state dir; nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

# Set in the server process by `make_app`; the authenticator runs inside giftless's Flask app.
_HUB_API_ENV = "BOSUN_LFS_HUB_API"
_CACHE_S = 60.0
_cache: dict[str, tuple[float, str]] = {}
_cache_lock = threading.Lock()


def _token_from(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme in ("bearer", "token"):
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def _hub_user(token: str) -> str | None:
    """The hub user owning TOKEN, or None when the hub does not accept it."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(token)
        if hit and hit[0] > now:
            return hit[1]
    request = urllib.request.Request(os.environ[_HUB_API_ENV].rstrip("/") + "/user")
    request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            name = json.loads(response.read()).get("name")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not name:
        return None
    with _cache_lock:
        _cache[token] = (now + _CACHE_S, name)
    return name


READ_ONLY_PREFIX = "/ro"
READ_WRITE_PREFIX = "/rw"


def hub_token_authenticator(request) -> Any:
    """giftless authenticator: ``/ro`` reads anonymously; ``/rw`` needs a valid hub token.

    A missing or refused credential on ``/rw`` is a 401, so a bad token shows up as an
    authentication failure in the client, never as a silent read-only downgrade.
    """
    from giftless.auth.allow_anon import AnonymousUser
    from giftless.auth.identity import DefaultIdentity, Permission
    from werkzeug.exceptions import Unauthorized

    if request.script_root != READ_WRITE_PREFIX:
        # An id, because giftless signs it as the JWT subject of the download actions and
        # PyJWT >= 2.10 refuses a subject that is not a string.
        user = AnonymousUser(id="anonymous")
        user.allow(permissions={Permission.READ, Permission.READ_META})
        return user
    header = request.headers.get("Authorization", "")
    token = _token_from(header) if header else None
    name = _hub_user(token) if token else None
    if name is None:
        raise Unauthorized(
            "a token is required here" if not header else "the hub did not accept the token"
        )
    identity = DefaultIdentity(name=name, id=name)
    identity.allow(permissions=Permission.all())
    return identity


def make_app(storage: Path, hub_api_url: str, jwt_key: str | None = None):
    """giftless's Flask app storing objects under STORAGE, writes checked against the hub."""
    from giftless.app import init_app

    os.environ[_HUB_API_ENV] = hub_api_url
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        # The /<org>/<repo>/objects/... routes: git-lfs with lfs.url = BASE/ORG/REPO (mobu's
        # lfs_read_url / lfs_write_url form) calls BASE/ORG/REPO/objects/batch.
        "LEGACY_ENDPOINTS": True,
        "AUTH_PROVIDERS": ["library.sandbox.lfs:hub_token_authenticator"],
        "TRANSFER_ADAPTERS": {
            "basic": {
                "factory": "giftless.transfer.basic_streaming:factory",
                "options": {
                    "storage_class": "giftless.storage.local_storage:LocalStorage",
                    "storage_options": {"path": str(storage)},
                    "action_lifetime": 900,
                },
            }
        },
        # Upload/download actions carry a short-lived JWT signed with a per-process key.
        "PRE_AUTHORIZED_ACTION_PROVIDER": {
            "factory": "giftless.auth.jwt:factory",
            "options": {
                "algorithm": "HS256",
                "private_key": jwt_key or secrets.token_hex(32),
                "default_lifetime": 900,
                "key_id": "bosun-sandbox-lfs",
            },
        },
    }
    with warnings.catch_warnings():
        # giftless warns that the legacy routes will go; they are the ones used here.
        warnings.simplefilter("ignore", FutureWarning)
        app = init_app(additional_config=config)
    from werkzeug.exceptions import NotFound
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    # The same app behind both doors: the mount point (request.script_root) decides the rules,
    # and giftless builds its action URLs under the door the client came through.
    return DispatcherMiddleware(NotFound(), {READ_ONLY_PREFIX: app, READ_WRITE_PREFIX: app})


def repo_urls(lfs_base: str, org: str = "bosun", repo: str = "lfs-check") -> dict[str, str]:
    """mobu's ``lfs_read_url`` and ``lfs_write_url`` for ORG/REPO on the sandbox server."""
    base = lfs_base.rstrip("/")
    return {
        "lfs_read_url": f"{base}{READ_ONLY_PREFIX}/{org}/{repo}",
        "lfs_write_url": f"{base}{READ_WRITE_PREFIX}/{org}/{repo}",
    }
