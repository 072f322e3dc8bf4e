"""Flock definitions in mobu's schema, so that a mobu `autostart` list runs as is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from library.errors import UserError
from library.flock import businesses
from library.flock.options import BusinessOptions, Duration


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    username: str
    uidnumber: int | None = None
    gidnumber: int | None = None

    @field_validator("username")
    @classmethod
    def _bot_prefix(cls, value: str) -> str:
        if not value.startswith("bot-"):
            raise ValueError(f"username {value!r} must start with 'bot-'")
        return value


class UserSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    username_prefix: str
    uid_start: int | None = None
    gid_start: int | None = None

    @field_validator("username_prefix")
    @classmethod
    def _bot_prefix(cls, value: str) -> str:
        if not value.startswith("bot-"):
            raise ValueError(f"username_prefix {value!r} must start with 'bot-'")
        return value


class BusinessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: str
    restart: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    _parsed: BusinessOptions | None = PrivateAttr(None)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return businesses.canonical(value)

    @model_validator(mode="after")
    def _check_options(self) -> BusinessConfig:
        model = businesses.REGISTRY[self.type].options
        unknown = sorted(set(self.options) - set(model.model_fields))
        if unknown:
            known = ", ".join(sorted(model.model_fields))
            raise ValueError(
                f"options: unknown option {unknown[0]!r} for {self.type} (known: {known})"
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


class FlockConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    count: int = Field(ge=1)
    users: list[User] | None = None
    user_spec: UserSpec | None = None
    scopes: list[str] = Field(default_factory=list)
    business: BusinessConfig
    start_batch_size: int | None = Field(None, ge=1)
    start_batch_wait: Duration = 0.0

    @model_validator(mode="after")
    def _users(self) -> FlockConfig:
        if (self.users is None) == (self.user_spec is None):
            raise ValueError("give exactly one of users and user_spec")
        if self.users is not None and len(self.users) != self.count:
            raise ValueError(
                f"users has {len(self.users)} entries but count is {self.count}; they must match"
            )
        return self

    def monkeys(self) -> list[User]:
        """The bot users, generated from user_spec with zero-padded names and consecutive ids."""
        if self.users is not None:
            return list(self.users)
        spec = self.user_spec
        assert spec is not None
        width = max(2, len(str(self.count)))
        return [
            User(
                username=f"{spec.username_prefix}{i + 1:0{width}d}",
                uidnumber=None if spec.uid_start is None else spec.uid_start + i,
                gidnumber=None if spec.gid_start is None else spec.gid_start + i,
            )
            for i in range(self.count)
        ]


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    error = exc.errors()[0]
    loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
    message = error["msg"].removeprefix("Value error, ")
    # A nested options error carries its own location ("options.idle_time: ...").
    nested = re.match(r"^(options[\w.]*): (.*)$", message)
    if nested:
        loc = ".".join(p for p in (loc, nested.group(1)) if p)
        message = nested.group(2)
    where = ".".join(p for p in (prefix, loc) if p)
    return f"{where}: {message}" if where else message


def parse_flocks(data: Any, source: str = "flocks") -> list[FlockConfig]:
    """Validate a list of flocks (or `{autostart: [...]}`, or one flock) into models.

    Raises UserError with one line naming the source, the flock and the field.
    """
    if isinstance(data, dict) and "autostart" in data:
        data = data["autostart"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise UserError(f"{source}: expected a list of flocks (or an 'autostart:' list)")
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
        if flock.name in seen:
            raise UserError(f"{source}: {label}: the name is used by another flock")
        seen.add(flock.name)
        flocks.append(flock)
    return flocks


def load_flocks(path: str | Path) -> list[FlockConfig]:
    """Read and validate a flock YAML file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such flock file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(
            f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    return parse_flocks(data, str(path))


def dump_flocks(flocks: list[FlockConfig]) -> list[dict[str, Any]]:
    """Plain data that `parse_flocks` accepts again (for flocks.yaml and for shards)."""
    return [flock.model_dump(mode="json", exclude_none=True) for flock in flocks]
