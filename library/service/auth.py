"""Who may do what: bearer tokens from a YAML file, stored as SHA-256 hashes, with scopes.

The file is a list of ``{name, token_sha256, scopes}``; a scope is ``read``, ``admin``, or
``flocks:GLOB`` (create, replace, pause, resume, refresh and delete the flocks whose name
matches GLOB, as ``fnmatch`` reads it, case-sensitive), or ``events`` (post events to the
trigger rules and cancel queued runs: ``library/triggers/api.py``). Without a file the service reads
anonymously and refuses every change: a forgotten file never opens the door.

A token is compared by its hash in constant time; the token itself is never stored, logged,
or shown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from library import yamlio
from library.errors import UserError

READ, ADMIN, FLOCKS_PREFIX = "read", "admin", "flocks:"
EVENTS = "events"  # post events to the trigger rules, cancel queued runs


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(min_length=1, max_length=200)
    token_sha256: str
    scopes: list[str] = Field(min_length=1)

    @field_validator("token_sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError(
                "expected 64 hex digits (sha256 of the token: "
                "`printf %s TOKEN | sha256sum`), not the token itself"
            )
        return value.lower()

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if scope in (READ, ADMIN, EVENTS):
                continue
            if scope.startswith(FLOCKS_PREFIX) and scope[len(FLOCKS_PREFIX) :]:
                continue
            raise ValueError(f"unknown scope {scope!r}: use read, admin, events or flocks:GLOB")
        return value


@dataclass(frozen=True)
class Identity:
    """The caller: a named token with its scopes, or anonymous (name ``anonymous``)."""

    name: str
    scopes: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return not self.scopes

    def may_change(self, flock: str | None) -> bool:
        """Admin changes anything; ``flocks:GLOB`` changes flocks whose name matches
        (`flock` None: whether the token may change any flock at all)."""
        if ADMIN in self.scopes:
            return True
        if flock is None:
            return any(scope.startswith(FLOCKS_PREFIX) for scope in self.scopes)
        return any(
            fnmatchcase(flock, scope[len(FLOCKS_PREFIX) :])
            for scope in self.scopes
            if scope.startswith(FLOCKS_PREFIX)
        )


ANONYMOUS = Identity("anonymous")


class AuthError(Exception):
    """401 (no or unknown token where one is needed) or 403 (outside the token's scopes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Authenticator:
    def __init__(self, entries: list[TokenEntry] | None, anonymous_read: bool = True) -> None:
        # None: no auth file was given (read-only service); [] would be a file with no token.
        self.entries = entries
        self.anonymous_read = anonymous_read

    @classmethod
    def from_file(cls, path: Path | None, anonymous_read: bool = True) -> Authenticator:
        if path is None:
            return cls(None, anonymous_read=True)
        return cls(load_entries(path), anonymous_read)

    @property
    def configured(self) -> bool:
        return self.entries is not None

    def identify(self, authorization: str | None) -> Identity:
        """The caller of a request from its Authorization header; 401 for a bad token."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            raise AuthError(401, "Authorization header: expected 'Bearer TOKEN'")
        if self.entries is None:
            raise AuthError(
                403, "this service has no auth file: it is read-only (start it with --auth-file)"
            )
        digest = hash_token(token)
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.token_sha256):
                return Identity(entry.name, tuple(entry.scopes))
        raise AuthError(401, "unknown token")

    def check_read(self, who: Identity) -> None:
        if who.anonymous and self.entries is not None and not self.anonymous_read:
            raise AuthError(401, "a token is needed to read (anonymous_read is off)")

    def check_change(self, who: Identity, flock: str | None, action: str) -> None:
        """Allow `action` on `flock` (None: on some flock, before the name is known)."""
        if self.entries is None:
            raise AuthError(
                403,
                f"{action}: this service has no auth file, so it refuses every change "
                "(start it with --auth-file)",
            )
        if who.anonymous:
            raise AuthError(401, f"{action}: a token is needed (Authorization: Bearer TOKEN)")
        if not who.may_change(flock):
            target = f"flock {flock!r}" if flock is not None else "flocks"
            raise AuthError(403, f"{action}: token {who.name!r} may not change {target}")

    def check_admin(self, who: Identity, action: str) -> None:
        """Allow `action` to admin tokens only (a solitary run makes tokens for any user)."""
        self.check_change(who, None, action)
        if ADMIN not in who.scopes:
            raise AuthError(403, f"{action}: needs the admin scope (token {who.name!r})")


def load_entries(path: Path) -> list[TokenEntry]:
    """The auth file's entries; UserError naming the file, the entry and the key."""
    data = yamlio.loads(yamlio.read_text(path, "auth file"), str(path))
    if not isinstance(data, list):
        raise UserError(
            f"{path}: expected a list of {{name, token_sha256, scopes}}, got {type(data).__name__}"
        )
    entries = []
    names: set[str] = set()
    for index, item in enumerate(data):
        try:
            entry = TokenEntry.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "(entry)"
            message = error["msg"].removeprefix("Value error, ")
            raise UserError(f"{path}: entry {index + 1}: {where}: {message}") from None
        if entry.name in names:
            raise UserError(f"{path}: entry {index + 1}: name {entry.name!r} is used twice")
        names.add(entry.name)
        entries.append(entry)
    return entries
