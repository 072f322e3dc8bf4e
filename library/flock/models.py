"""Flock definitions in mobu's schema (mobu 19.x), so that a mobu `autostart` list runs as is.

What mobu accepts is accepted, what it refuses is refused, with the same defaults and the same
generated usernames (``lsst-sqre/mobu``: ``models/flock.py``, ``models/user.py``,
``services/flock.py``). Where bosun is deliberately different the flock carries a one-line
notice (``FlockConfig.notices``) that the loader logs and ``scale check`` prints:

- an old business name (``JupyterPythonLoop``) is read as its new one;
- keys mobu ignores (flock-level ``restart``, unknown user keys) are ignored, and named;
- usernames need only start with ``bot-`` (mobu: ``bot-mobu``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from library import yamlio
from library.errors import UserError
from library.flock import businesses
from library.flock.options import BusinessOptions, Duration
from library.platform import check_user_prefix, check_username

log = logging.getLogger(__name__)

MOBU_USER_PREFIX = "bot-mobu"


class Group(BaseModel):
    """A supplementary group of a bot user (mobu 15.4)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    id: int


def _bot_name(value: str, what: str) -> str:
    if not value.startswith("bot-"):
        raise ValueError(f"{what} {value!r} must start with 'bot-' (mobu: 'bot-mobu')")
    # The platform's user-name pattern too: a name that passes is one URL path segment, so
    # "bot-x/../alice" is refused here, before any URL is built with it.

    if what == "username":
        return check_username(value)
    try:
        check_user_prefix(value)
    except ValueError:
        raise ValueError(
            f"{what} {value!r} does not make valid platform user names (lower-case letters, "
            "digits and single inner dashes)"
        ) from None
    return value


class User(BaseModel):
    # mobu's User has no extra="forbid": unknown keys are ignored (and named in a notice).
    model_config = ConfigDict(frozen=True)

    username: str
    uidnumber: int | None = None
    gidnumber: int | None = None
    groups: list[Group] = Field(default_factory=list)

    @field_validator("username")
    @classmethod
    def _bot_prefix(cls, value: str) -> str:
        return _bot_name(value, "username")

    @property
    def effective_gid(self) -> int | None:
        """Gafaelfawr's rule, as mobu applies it: no GID but a UID means GID = UID."""
        return self.gidnumber if self.gidnumber is not None else self.uidnumber


class UserSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    username_prefix: str
    uid_start: int | None = None
    gid_start: int | None = None
    groups: list[Group] = Field(default_factory=list)

    @field_validator("username_prefix")
    @classmethod
    def _bot_prefix(cls, value: str) -> str:
        return _bot_name(value, "username_prefix")


class BusinessConfig(BaseModel):
    # mobu's BusinessConfig forbids unknown keys.
    model_config = ConfigDict(extra="forbid")

    type: str
    restart: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    _parsed: BusinessOptions | None = PrivateAttr(None)
    _alias_of: str | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _canonical_type(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        alias = None
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            name = data["type"]
            canonical = businesses.canonical(name)
            if businesses.REGISTRY[canonical].options_required and data.get("options") is None:
                raise ValueError(f"options: Field required ({canonical} has required options)")
            if canonical != name:
                alias = name
                data = {**data, "type": canonical}
        model = handler(data)
        model._alias_of = alias
        return model

    @model_validator(mode="after")
    def _check_options(self) -> BusinessConfig:
        model = businesses.REGISTRY[self.type].options
        unknown = sorted(set(self.options) - _accepted_keys(model))
        if unknown:
            known = ", ".join(sorted(model.model_fields))
            hint = _hint(self.type, unknown[0])
            raise ValueError(
                f"options.{unknown[0]}: not an option of {self.type}"
                + (f" ({hint})" if hint else f" (known: {known})")
            )
        try:
            self._parsed = model.model_validate(self.options)
        except ValidationError as exc:
            raise ValueError(f"{_first_error(exc, 'options')} ({self.type})") from None
        return self

    @property
    def parsed_options(self) -> BusinessOptions:
        assert self._parsed is not None
        return self._parsed


def _accepted_keys(model: type[BaseModel]) -> set[str]:
    keys = set(model.model_fields)
    return keys | {f.alias for f in model.model_fields.values() if f.alias}


# Why a key is refused, when the reason is a rename or a different business.
_HINTS = {
    "repo_branch": "mobu renamed it repo_ref",
    "notebooks_to_run": "mobu selects notebooks with collection_rules (intersect_union_of)",
    "timeout": "mobu's TAP option is query_timeout (seconds)",
}


def _hint(business: str, key: str) -> str:
    if business == "TAPQueryRunner" and key == "query_set":
        return "TAPQueryRunner runs its `queries`; a query set is TAPQuerySetRunner's"
    if key == "jitter" and business != "HTTPLoop":
        return f"mobu has `jitter` on Nublado businesses only, not on {business}"
    return _HINTS.get(key, "")


class FlockConfig(BaseModel):
    # mobu's FlockConfig has no extra="forbid": unknown flock keys are ignored (and named).
    model_config = ConfigDict()

    name: str = Field(min_length=1)
    count: int = Field(ge=1)
    users: list[User] | None = None
    user_spec: UserSpec | None = None
    scopes: list[str]
    business: BusinessConfig
    start_batch_size: int | None = Field(None, ge=0)  # mobu: 0 (falsy) starts all at once
    start_batch_wait: Duration | None = None
    _notices: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _users(self) -> FlockConfig:
        # mobu's checks, in mobu's order and with its truthiness (an empty list is no list).
        if not self.users and not self.user_spec:
            raise ValueError("give one of users and user_spec")
        if self.users and self.user_spec:
            raise ValueError("give only one of users and user_spec, not both")
        if self.users and len(self.users) != self.count:
            raise ValueError(
                f"users: has {len(self.users)} entries, count is {self.count}; "
                f"mobu needs exactly {self.count}"
            )
        if self.start_batch_size and not self.start_batch_wait:
            raise ValueError("start_batch_wait: must be given (and not 0) with start_batch_size")
        return self

    @property
    def notices(self) -> list[str]:
        return list(self._notices)

    def monkeys(self) -> list[User]:
        """The bot users; from user_spec as mobu builds them (index padded to count's digits)."""
        if self.users:
            return list(self.users)
        spec = self.user_spec
        assert spec is not None
        width = int(math.log10(self.count) + 1)
        return [
            User(
                username=spec.username_prefix + str(i).zfill(width),
                uidnumber=None if spec.uid_start is None else spec.uid_start + i - 1,
                gidnumber=None if spec.gid_start is None else spec.gid_start + i - 1,
                groups=list(spec.groups),
            )
            for i in range(1, self.count + 1)
        ]


_UNION_TAGS = {"class", "reference", "tag"}


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    """One line from pydantic's first error: `where: what`, union branch names left out."""
    error = exc.errors()[0]
    parts: list[str] = []
    tagged = False
    for p in error["loc"]:
        text = str(p)
        # Union branches (`function-after[...]`, tags) are not keys a user wrote.
        if text.startswith("function-"):
            continue
        if text in _UNION_TAGS and parts and parts[-1] == "image" and not tagged:
            tagged = True
            continue
        parts.append(text)
    loc = ".".join(parts)
    message = error["msg"].removeprefix("Value error, ")
    # A nested error carries its own location ("options.idle_time: ...").
    head, sep, rest = message.partition(": ")
    if sep and head.replace(".", "").replace("_", "").isalnum() and " " not in head:
        loc = ".".join(p for p in (loc, head) if p)
        message = rest
    where = ".".join(p for p in (prefix, loc) if p)
    return f"{where}: {message}" if where else message


# mobu options bosun validates but that change nothing here (docs/scale-friday.md says why).
NO_EFFECT = {
    "log_level": "bosun logs at the command's level",
    "get_node": "bosun does not look the lab's node up",
    "spawn_settle_time": "bosun follows the spawn progress from the start",
    "url_prefix": "the hub URL comes from the platform",
    "working_directory": "code runs in the kernel's own directory",
    "max_websocket_message_size": "bosun's kernel client caps messages at 256 MiB",
}


def _notices_for(item: dict[str, Any], flock: FlockConfig) -> list[str]:
    notes = []
    if flock.business._alias_of:
        notes.append(
            f"business.type {flock.business._alias_of} is mobu's old name of "
            f"{flock.business.type}; read as {flock.business.type}"
        )
    given = (item.get("business") or {}).get("options") or {}
    for key in sorted(set(given) & set(NO_EFFECT)):
        notes.append(
            f"option {key} is accepted as mobu accepts it, without effect: {NO_EFFECT[key]}"
        )
    ignored = sorted(set(item) - set(FlockConfig.model_fields))
    if ignored:
        notes.append(f"ignored flock key(s) {', '.join(ignored)}, as mobu ignores them")
    given_models: list[tuple[str, Any, type[BaseModel]]] = [
        *((f"users[{i}]", u, User) for i, u in enumerate(item.get("users") or [])),
        *(("user_spec", s, UserSpec) for s in [item.get("user_spec")] if s),
    ]
    for where, raw, model in given_models:
        if isinstance(raw, dict):
            extra = sorted(set(raw) - set(model.model_fields))
            if extra:
                notes.append(f"ignored {where} key(s) {', '.join(extra)}, as mobu ignores them")
    names = (
        [flock.user_spec.username_prefix]
        if flock.user_spec
        else [u.username for u in flock.users or []]
    )
    odd = [n for n in names if not n.startswith(MOBU_USER_PREFIX)]
    if odd:
        notes.append(
            f"username {odd[0]!r} does not start with {MOBU_USER_PREFIX!r}: bosun accepts any "
            "'bot-' name, mobu would refuse it"
        )
    return notes


def find_flock_list(data: Any) -> tuple[Any, str]:
    """The flock list wherever it sits: a bare list, `autostart:`, or `config.autostart:` of a
    Phalanx values file; also one flock mapping. Returns (data, where it was found)."""
    if isinstance(data, dict):
        if "autostart" in data:
            return data["autostart"], "autostart"
        config = data.get("config")
        if isinstance(config, dict) and "autostart" in config:
            return config["autostart"], "config.autostart"
        if "name" in data and "business" in data:
            return [data], "a single flock"
    return data, "the top level"


def parse_flocks(data: Any, source: str = "flocks") -> list[FlockConfig]:
    """Validate a list of flocks (or any holder `find_flock_list` knows) into models.

    Raises UserError with one line naming the source, the flock and the field.
    """
    if data is None:
        raise UserError(f"{source}: the file is empty; expected a list of flocks")
    config = data.get("config") if isinstance(data, dict) else None
    if isinstance(config, dict) and "autostart" not in config and "autostart" not in data:
        raise UserError(f"{source}: a Phalanx values file without config.autostart: no flocks")
    data, where = find_flock_list(data)
    if not isinstance(data, list):
        raise UserError(
            f"{source}: expected a list of flocks, an 'autostart:' list, or a Phalanx values "
            f"file with 'config.autostart:' (found {type(data).__name__} at {where})"
        )
    if not data:
        raise UserError(f"{source}: the flock list at {where} is empty")
    flocks: list[FlockConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        name = item.get("name") if isinstance(item, dict) else None
        label = f"flock {name!r}" if name else f"flock #{index + 1}"
        if not isinstance(item, dict):
            raise UserError(f"{source}: {label}: expected a mapping, got {type(item).__name__}")
        try:
            flock = FlockConfig.model_validate(item)
        except ValidationError as exc:
            raise UserError(f"{source}: {label}: {_first_error(exc)}") from None
        except ValueError as exc:  # from a before-validator outside pydantic's wrapping
            raise UserError(f"{source}: {label}: business.type: {exc}") from None
        if flock.name in seen:
            raise UserError(f"{source}: {label}: the name is used by another flock")
        seen.add(flock.name)
        flock._notices = _notices_for(item, flock)
        flocks.append(flock)
    return flocks


def load_flocks(path: str | Path, *, quiet: bool = False) -> list[FlockConfig]:
    """Read and validate a flock file (list, autostart list, or Phalanx values file).

    Each flock's notices are logged once, one line each, unless `quiet`.
    """
    path = Path(path)
    data = yamlio.loads(yamlio.read_text(path, "flock file"), str(path))
    flocks = parse_flocks(data, str(path))
    if not quiet:
        for flock in flocks:
            for note in flock.notices:
                log.warning("%s: flock %r: %s", path, flock.name, note)
    return flocks


def dump_flocks(flocks: list[FlockConfig]) -> list[dict[str, Any]]:
    """Plain data that `parse_flocks` accepts again (for flocks.yaml and for shards)."""
    return [flock.model_dump(mode="json", exclude_none=True) for flock in flocks]
