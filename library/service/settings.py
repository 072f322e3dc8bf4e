"""The ``service:`` section of a project config: one pydantic model, strictly validated.

Every key has a default, so a project needs no section at all; ``service run``'s flags
override the keys they name. Paths written in a config file are relative to that file's
directory; paths given as flags are relative to the working directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from library.errors import UserError
from library.flock.options import Duration
from library.triggers.settings import TriggerSettings

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_PREFIX = "/mobu"  # mobu's own, so its clients and scripts work unchanged
DEFAULT_STATE_DIR = ".service"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlatformSettings(_Strict):
    """Where the platform answers; null: $BOSUN_HUB_URL... else the running sandbox."""

    hub_url: str | None = None
    tap_url: str | None = None
    token_file: str | None = None


class Retention(_Strict):
    """How long recorded events are kept under ``events_dir`` (oldest removed first)."""

    max_age: Duration = 30 * 86400.0
    max_bytes: int | None = Field(None, ge=0)
    # How often finished hours are compacted and the retention applied.
    check_every: Duration = Field(60.0, gt=0)


class ReportRetry(_Strict):
    """A report whose post failed (no answer, a timeout, 429 or 5xx) is posted again after
    ``delay``, doubled after each failure, up to ``attempts`` posts in all, none started more
    than ``within`` after the first."""

    attempts: int = Field(5, ge=1, le=20)
    delay: Duration = Field(30.0, gt=0)
    within: Duration = Field(900.0, gt=0)


class ReportSchedule(_Strict):
    """mobu's daily report: posted at ``time`` (UTC, HH:MM) to a Slack-compatible webhook."""

    webhook_url: str | None = None
    time: str = "08:00"
    enabled: bool = False
    retry: ReportRetry = Field(default_factory=ReportRetry)

    @field_validator("time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"expected HH:MM (UTC), got {value!r}")
        return value


class AlertRule(_Strict):
    """Alert when the success rate of flocks matching ``flocks`` over ``window`` falls below
    ``min_success_pct``; one message when it fires, one when it recovers."""

    name: str | None = None  # in messages and metrics; default rule0, rule1...
    flocks: str = "*"
    min_success_pct: float = Field(95.0, ge=0, le=100)
    window: Duration = Field(3600.0, gt=0)
    webhook_url: str | None = None  # default: report.webhook_url
    evaluate_every: Duration = Field(10.0, gt=0)


class DaskPlacement(_Strict):
    """Flocks matching ``flocks`` run in shards on Dask: a local cluster of ``workers``
    processes, or the cluster at ``scheduler`` (tcp://HOST:PORT); the service stays their
    control plane (library/service/dask.py)."""

    flocks: str
    workers: int | None = Field(None, ge=1, le=256)
    scheduler: str | None = None

    @model_validator(mode="after")
    def _one_cluster(self) -> DaskPlacement:
        if (self.workers is None) == (self.scheduler is None):
            raise ValueError("give either workers (a local cluster) or scheduler (an address)")
        return self


class ServiceSettings(_Strict):
    listen: str = DEFAULT_LISTEN
    prefix: str = DEFAULT_PREFIX
    # Flocks started at boot, as mobu's `autostart`: inline flocks, or paths of flock files.
    autostart: list[dict[str, Any] | str] = Field(default_factory=list)
    auth_file: Path | None = None
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    events_dir: Path | None = None  # null: STATE_DIR/events
    # Recorded events reach disk at least this often: a crash loses at most this much.
    flush_interval: Duration = 10.0
    # A request body above this is refused with 413 before it is read further.
    max_body_bytes: int = Field(1 << 20, ge=1024)
    # Lines kept per monkey for GET .../monkeys/{m}/log (oldest dropped first).
    monkey_log_lines: int = Field(200, ge=10, le=100_000)
    # On pause: delete the monkeys' labs (release) or keep them running idle (keep).
    pause_labs: Literal["release", "keep"] = "release"
    # Without an auth file reads are anonymous and changes refused; with one, whether reads
    # still need no token.
    anonymous_read: bool = True
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    retention: Retention = Field(default_factory=Retention)
    report: ReportSchedule = Field(default_factory=ReportSchedule)
    alerts: list[AlertRule] = Field(default_factory=list)
    dask: list[DaskPlacement] = Field(default_factory=list)
    # Trigger rules, the run queue, the results store, GitHub (library/triggers).
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return normalise_prefix(value)

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def events_path(self) -> Path:
        return self.events_dir if self.events_dir is not None else self.state_dir / "events"

    def with_base(self, base: Path) -> ServiceSettings:
        """Relative paths of a config file made relative to its directory."""
        updates: dict[str, Any] = {}
        for key in ("auth_file", "state_dir", "events_dir"):
            value = getattr(self, key)
            if value is not None and not value.is_absolute():
                updates[key] = base / value
        updates["autostart"] = [
            str(base / item) if isinstance(item, str) and not Path(item).is_absolute() else item
            for item in self.autostart
        ]
        updates["triggers"] = self.triggers.with_base(base)
        return self.model_copy(update=updates)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. {DEFAULT_LISTEN}), got {value!r}")
    return host.strip("[]"), int(port)


def normalise_prefix(value: str) -> str:
    value = value.strip()
    if value in ("", "/"):
        return ""
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+/?", value if value.startswith("/") else "/" + value):
        raise ValueError(f"expected a URL path such as /mobu, got {value!r}")
    return "/" + value.strip("/")


def parse_settings(data: Any, source: str) -> ServiceSettings:
    """The section as a model; UserError naming `source`, the key and what is wrong."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping, got {type(data).__name__}")
    try:
        return ServiceSettings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}.{where}: {message}") from None
