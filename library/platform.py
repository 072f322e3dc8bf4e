"""The platform under test: where its services answer and how bot users get their tokens.

A `Platform` is plain, frozen data, resolved once at the command boundary (`resolve`) and
handed down: clients (`library.tap`, `library.jupyter`, `library.flock`) receive URLs and
tokens and never look the platform up themselves. It holds no secret, only where secrets are
(token files), so it can be written to an artifact, sent to a Dask shard, or logged.

Each field is found the same way: the command's flag, else the environment
(``$BOSUN_HUB_URL``, ``$BOSUN_TAP_URL``, ``$BOSUN_SIA_URL``, ``$BOSUN_DISCOVERY_URL``,
``$BOSUN_TOKEN_FILE``, ``$BOSUN_TOKEN_PROVIDER``, ``$BOSUN_GAFAELFAWR_URL``), else the running
sandbox, which is one provider of a Platform (`library.sandbox.platform`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from library.errors import UserError
from library.tokens import read_secret_file

# Gafaelfawr's (and mobu's) pattern for every valid user name: lower-case letters, digits and
# single inner dashes, at least one letter. No "/", ".", "%" or "?": a valid name is always one
# URL path segment.
USERNAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9]|-[a-z0-9])*[a-z](?:[a-z0-9]|-[a-z0-9])*$")
USERNAME_MAX = 64
BOT_PREFIX = "bot-"


def check_username(name: str, *, bot: bool = True) -> str:
    """NAME when it is a valid (bot) user name of the platform; ValueError saying why not."""
    if not isinstance(name, str) or not name:
        raise ValueError("a user name must be a non-empty string")
    if bot and not name.startswith(BOT_PREFIX):
        raise ValueError(f"user name {name!r} must start with {BOT_PREFIX!r} (bot users only)")
    if len(name) > USERNAME_MAX or not USERNAME_PATTERN.match(name):
        raise ValueError(
            f"user name {name!r} is not a valid platform user name: lower-case letters, digits "
            f"and single inner dashes, at most {USERNAME_MAX} characters"
        )
    return name


def check_user_prefix(prefix: str) -> str:
    """PREFIX when names made of it and a number are valid bot user names."""
    check_username(f"{prefix}1")
    return prefix


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class JupyterHubTokens(_Frozen):
    """Per-user tokens minted through JupyterHub's REST API with an admin (service) token.

    Creates each bot user if needed. On JupyterHub >= 3 the token carries the flock's scopes
    (see `library.platform_tokens.hub_scopes` for how RSP scope names map onto the hub's).
    """

    kind: Literal["jupyterhub"] = "jupyterhub"
    hub_url: str
    admin_token_file: str
    # A day: a Scale Friday run lasts hours and the tokens are minted once, at monkey start.
    expires_in: Annotated[int, Field(ge=60)] = 86400


class GafaelfawrTokens(_Frozen):
    """Service tokens minted through Gafaelfawr's admin token API, as mobu does on the RSP."""

    kind: Literal["gafaelfawr"] = "gafaelfawr"
    base_url: str
    admin_token_file: str
    batch_size: Annotated[int, Field(ge=1)] = 10
    lifetime_s: Annotated[int, Field(ge=60)] = 365 * 86400


class StaticTokens(_Frozen):
    """A file of ``user: token`` lines: bot users and tokens that exist already."""

    kind: Literal["file"] = "file"
    path: str


TokenSource = Annotated[
    JupyterHubTokens | GafaelfawrTokens | StaticTokens, Field(discriminator="kind")
]

TOKEN_PROVIDERS = ("jupyterhub", "gafaelfawr", "file")


class Platform(_Frozen):
    """Where the platform's services answer and where bot users' tokens come from."""

    hub_url: str | None = None
    tap_url: str | None = None
    # Further TAP services by name (the sandbox: "auth", its token-checking front of DaCHS).
    tap_urls: dict[str, str] = Field(default_factory=dict)
    sia_url: str | None = None
    discovery_url: str | None = None
    tokens: TokenSource | None = None
    # Where each value came from ("flag", "environment", "sandbox"): for messages only.
    origin: dict[str, str] = Field(default_factory=dict)

    def require(
        self,
        what: Literal["hub_url", "tap_url", "sia_url", "discovery_url"],
        flag: str | None = None,
    ) -> str:
        """The URL named WHAT, or one line saying how to give it (FLAG: the command's own)."""
        value: str | None = getattr(self, what)
        if value:
            return value
        default_flag, env = _SOURCES[what]
        flag = flag or default_flag
        raise UserError(
            f"no {_LABELS[what]}: pass {flag} URL, set ${env}, or start the sandbox with "
            "./run_toolbox.py sandbox up"
        )

    def tap(self, name: str | None = None) -> str:
        """The default TAP service, or the one named NAME."""
        if name is None or name == "default":
            return self.require("tap_url")
        try:
            return self.tap_urls[name]
        except KeyError:
            known = ", ".join(["default", *sorted(self.tap_urls)])
            raise UserError(f"no TAP service named {name!r} (known: {known})") from None

    def to_data(self) -> dict[str, Any]:
        """Plain JSON data (for shards and artifacts); `from_data` reads it back."""
        return self.model_dump(mode="json")

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Platform:
        return cls.model_validate(data, strict=False)


_SOURCES = {
    "hub_url": ("--hub-url", "BOSUN_HUB_URL"),
    "tap_url": ("--tap-url", "BOSUN_TAP_URL"),
    "sia_url": ("--sia-url", "BOSUN_SIA_URL"),
    "discovery_url": ("--discovery-url", "BOSUN_DISCOVERY_URL"),
}
_LABELS = {
    "hub_url": "hub",
    "tap_url": "TAP service",
    "sia_url": "SIA service",
    "discovery_url": "service discovery",
}


def resolve(
    *,
    hub_url: str | None = None,
    tap_url: str | None = None,
    sia_url: str | None = None,
    discovery_url: str | None = None,
    token_file: str | Path | None = None,
    token_provider: str | None = None,
    use_sandbox: bool = True,
) -> Platform:
    """The platform from flags, else the environment, else the running sandbox.

    The sandbox is asked only for what flags and environment left open, and only when it
    runs; a value still missing is reported when a command needs it (`Platform.require`).

    Tokens: ``token_provider`` (``$BOSUN_TOKEN_PROVIDER``) chooses the provider; without it a
    token file holding one bare token is a hub admin token (JupyterHub provider) and a file of
    ``user: token`` lines is a static provider. ``gafaelfawr`` takes the admin token from the
    token file and the base URL from ``$BOSUN_GAFAELFAWR_URL``.
    """
    given = {
        "hub_url": hub_url,
        "tap_url": tap_url,
        "sia_url": sia_url,
        "discovery_url": discovery_url,
    }
    values: dict[str, str | None] = {}
    origin: dict[str, str] = {}
    for key, value in given.items():
        if value:
            values[key], origin[key] = value, "flag"
        elif os.environ.get(_SOURCES[key][1], "").strip():
            values[key], origin[key] = os.environ[_SOURCES[key][1]].strip(), "environment"
    if token_file:
        token_file, origin["tokens"] = str(token_file), "flag"
    elif os.environ.get("BOSUN_TOKEN_FILE", "").strip():
        token_file, origin["tokens"] = os.environ["BOSUN_TOKEN_FILE"].strip(), "environment"
    provider = token_provider or os.environ.get("BOSUN_TOKEN_PROVIDER", "").strip() or None
    if provider is not None and provider not in TOKEN_PROVIDERS:
        raise UserError(
            f"token provider {provider!r} ($BOSUN_TOKEN_PROVIDER): "
            f"choose one of {', '.join(TOKEN_PROVIDERS)}"
        )

    sandbox: Platform | None = None
    missing = [k for k in given if not values.get(k)]
    if use_sandbox and (missing or token_file is None):
        from library import sandbox as sandbox_provider

        sandbox = sandbox_provider.platform()
    tap_urls: dict[str, str] = {}
    if sandbox is not None:
        for key in missing:
            value = getattr(sandbox, key)
            if value:
                values[key], origin[key] = value, "sandbox"
        if origin.get("tap_url") == "sandbox":
            tap_urls = dict(sandbox.tap_urls)

    tokens = _tokens(token_file, provider, values.get("hub_url"))
    # The sandbox's admin token is only good for the sandbox's own hub.
    if (
        tokens is None
        and sandbox is not None
        and sandbox.tokens is not None
        and _same(values.get("hub_url"), sandbox.hub_url)
    ):
        tokens, origin["tokens"] = sandbox.tokens, "sandbox"
    return Platform(
        hub_url=values.get("hub_url"),
        tap_url=values.get("tap_url"),
        tap_urls=tap_urls,
        sia_url=values.get("sia_url"),
        discovery_url=values.get("discovery_url"),
        tokens=tokens,
        origin=origin,
    )


def _same(url: str | None, other: str | None) -> bool:
    return url is not None and other is not None and url.rstrip("/") == other.rstrip("/")


def _tokens(
    token_file: str | Path | None, provider: str | None, hub_url: str | None
) -> JupyterHubTokens | GafaelfawrTokens | StaticTokens | None:
    if token_file is None:
        if provider is not None:
            raise UserError(
                f"token provider {provider!r} needs a token file: pass --token-file or set "
                "$BOSUN_TOKEN_FILE"
            )
        return None

    path = str(token_file)
    # Read now: a missing or empty file is one line at the command boundary, and its tokens
    # are registered for masking before anything could print them.
    text = read_secret_file(path)
    if provider is None:
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        provider = "jupyterhub" if len(lines) == 1 and ":" not in lines[0] else "file"
    if provider == "file":
        return StaticTokens(path=path)
    if provider == "gafaelfawr":
        base = os.environ.get("BOSUN_GAFAELFAWR_URL", "").strip() or None
        if base is None:
            raise UserError(
                "token provider gafaelfawr: set $BOSUN_GAFAELFAWR_URL to the platform's base "
                "URL (the one serving /auth/api/v1/tokens)"
            )
        return GafaelfawrTokens(base_url=base, admin_token_file=path)
    if hub_url is None:
        raise UserError(
            f"--token-file {path} holds a hub admin token but no hub is known: pass --hub-url, "
            "set $BOSUN_HUB_URL, or start the sandbox"
        )
    return JupyterHubTokens(hub_url=hub_url, admin_token_file=path)
