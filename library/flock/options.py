"""Business options: mobu's (19.x) names, defaults and validation, plus bosun's HTTPLoop.

The models follow mobu's pydantic models field by field (``lsst-sqre/mobu``,
``src/mobu/models/business/*.py``): the same option names and defaults, ``extra="forbid"`` on
options as mobu has it, and pydantic's default (lax) coercion as mobu has it, so a value mobu
accepts (``"10"`` for a count, ``"true"`` for a flag) is accepted here too.

Durations follow safir's ``HumanTimedelta``: a number of seconds (``30``, ``"2.5"``), or one or
more number+unit parts in the order weeks, days, hours, minutes, seconds (``1d``, ``2 hours``,
``5min``, ``1h30m``, ``4h 3minutes``). bosun also accepts ``ms`` and decimals before a unit
(``250ms``, ``1.5h``), and refuses negative durations, which mobu would take. They are stored
as float seconds.
"""

from __future__ import annotations

import re
from enum import Enum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

# safir.datetime.parse_timedelta's grammar; bosun adds decimals and a trailing `ms` part.
_NUM = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(
    rf"(?:{_NUM}\s*(?:weeks|week|w))?\s*"
    rf"(?:{_NUM}\s*(?:days|day|d))?\s*"
    rf"(?:{_NUM}\s*(?:hours|hour|hr|h))?\s*"
    rf"(?:{_NUM}\s*(?:minutes|minute|mins|min|m)(?!s))?\s*"
    rf"(?:{_NUM}\s*(?:seconds|second|secs|sec|s))?\s*"
    rf"(?:{_NUM}\s*ms)?$"
)
_FACTORS = (604800.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)
_HINT = "a duration like 30, 5s, 5min, 2 hours, 1d or 1h30m"


def parse_duration(value: object) -> float:
    """A duration as mobu reads it (see the module docstring) -> float seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_HINT}, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _DURATION.match(text)
            if match is None:
                raise ValueError(f"expected {_HINT}, got {value!r}") from None
            seconds = sum(
                float(part) * factor
                for part, factor in zip(match.groups(), _FACTORS, strict=True)
                if part is not None
            )
    else:
        raise ValueError(f"expected {_HINT}, got {value!r}")
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        # NaN or infinity would only fail (or wait forever) once the monkeys run.
        raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class LogLevel(StrEnum):
    """safir's LogLevel: any case is accepted."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class BusinessOptions(BaseModel):
    """Options every mobu business accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_idle_time: Duration = Field(60.0, description="Wait after a failure before restarting.")
    idle_time: Duration = Field(60.0, description="Wait between two executions.")
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = Field(
        LogLevel.INFO, description="Log level of this business (DEBUG ... CRITICAL)."
    )


class EmptyLoopOptions(BusinessOptions):
    """EmptyLoop: does nothing, successfully; measures the engine itself."""


class MusterOptions(BusinessOptions):
    """Muster: ingress and authorization checks against a Muster service."""


class GitLFSOptions(BusinessOptions):
    """GitLFS: push then clone a Git-LFS repository and compare."""

    lfs_read_url: str = Field(description="LFS read URL for the Git-LFS enabled repo.")
    lfs_write_url: str = Field(description="LFS write URL for the Git-LFS enabled repo.")


# --- Nublado labs --------------------------------------------------------------------------


ImageClass = Literal[
    "recommended", "latest-release", "latest-weekly", "latest-daily", "by-reference", "by-tag"
]


class ImageSize(Enum):
    """The sizes Nublado's spawn form knows (rubin.nublado.client's NubladoImageSize)."""

    Fine = "Fine"
    Diminutive = "Diminutive"
    Tiny = "Tiny"
    Small = "Small"
    Medium = "Medium"
    Large = "Large"
    Huge = "Huge"
    Gargantuan = "Gargantuan"
    Colossal = "Colossal"


class NubladoImage(BaseModel):
    """Which lab image to spawn (rubin.nublado.client's NubladoImage: `class` or `image_class`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    image_class: ImageClass = Field(alias="class")
    size: ImageSize = ImageSize.Large
    debug: bool = False

    def to_spawn_form(self) -> dict[str, str]:
        """The fields Nublado's spawn form takes for this choice."""
        raise NotImplementedError


class ImageByClass(NubladoImage):
    image_class: Literal["recommended", "latest-release", "latest-weekly", "latest-daily"] = Field(
        "recommended", alias="class"
    )

    def to_spawn_form(self) -> dict[str, str]:
        return _form({"image_class": self.image_class}, self)


class ImageByReference(NubladoImage):
    image_class: Literal["by-reference"] = Field("by-reference", alias="class")
    reference: str

    def to_spawn_form(self) -> dict[str, str]:
        return _form({"image_list": self.reference}, self)


class ImageByTag(NubladoImage):
    image_class: Literal["by-tag"] = Field("by-tag", alias="class")
    tag: str

    def to_spawn_form(self) -> dict[str, str]:
        return _form({"image_tag": self.tag}, self)


def _form(choice: dict[str, str], image: NubladoImage) -> dict[str, str]:
    form = {**choice, "size": image.size.value}
    if image.debug:
        form["enable_debug"] = "true"
    return form


def _image_kind(value: Any) -> str | None:
    # mobu's smart union picks the branch whose fields fit; choosing it by image_class gives the
    # same answers and an error message about the branch the user meant.
    if isinstance(value, NubladoImage):
        value = value.model_dump(by_alias=True)
    if not isinstance(value, dict):
        return None
    kind = str(value.get("image_class", value.get("class", "recommended")))
    return {"by-reference": "reference", "by-tag": "tag"}.get(kind, "class")


Image = Annotated[
    Annotated[ImageByClass, Tag("class")]
    | Annotated[ImageByReference, Tag("reference")]
    | Annotated[ImageByTag, Tag("tag")],
    Discriminator(
        _image_kind,
        custom_error_type="image",
        custom_error_message=(
            "expected a mapping {image_class, size, debug} (+ reference for by-reference, "
            "tag for by-tag)"
        ),
    ),
]


class NubladoOptions(BusinessOptions):
    """Options of every business that runs code in a Nublado lab."""

    delete_lab: bool = True
    delete_timeout: Duration = 60.0
    execution_idle_time: Duration = 1.0
    get_node: bool = True
    image: Image = Field(
        default_factory=ImageByClass,
        description="Lab image: {image_class|class, size, debug} (+ reference or tag).",
    )
    jitter: Duration = Field(0.0, description="Random wait, up to this, before logging in.")
    jupyter_timeout: Duration = 60.0
    max_websocket_message_size: int | None = None
    spawn_settle_time: Duration = 10.0
    spawn_timeout: Duration = 610.0
    url_prefix: str = "/nb/"
    working_directory: str | None = None


class NubladoPythonLoopOptions(NubladoOptions):
    code: str = 'print(2+2, end="")'
    max_executions: int = Field(25, ge=1)


class CollectionRule(BaseModel):
    """mobu's notebook collection rule: keep (intersect) or drop (exclude) what patterns match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["intersect_union_of", "exclude_union_of"]
    patterns: list[str]

    @field_validator("patterns")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))  # mobu holds them in a set


class Filterable(BaseModel):
    """Which notebooks of a repo run: mobu's `exclude_dirs` (deprecated) and `collection_rules`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude_dirs: list[str] = Field(default_factory=list)
    collection_rules: list[CollectionRule] = Field(default_factory=list)

    @field_validator("exclude_dirs")
    @classmethod
    def _dirs(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


NOTEBOOK_REPO_URL = "https://github.com/lsst-sqre/notebook-demo.git"  # mobu's default
NOTEBOOK_REPO_REF = "prod"


class NotebookRunnerOptions(NubladoOptions, Filterable):
    """NotebookRunnerList and NotebookRunnerInfinite (and, with max_executions, Counting)."""

    repo_ref: str = NOTEBOOK_REPO_REF
    repo_url: str = NOTEBOOK_REPO_URL
    notebook_idle_time: Duration = 0.0
    # mobu 19.1 (Phalanx's values files set it on NotebookRunnerCounting flocks).
    cell_execution_timeout: Duration | None = None
    # bosun addition: run the notebooks of a local directory instead of cloning repo_url.
    notebooks_dir: str | None = Field(None, description="bosun: local directory of notebooks.")


class NotebookRunnerCountingOptions(NotebookRunnerOptions):
    max_executions: int = Field(25, ge=1)


# --- TAP and SIA ---------------------------------------------------------------------------


class TAPOptions(BusinessOptions):
    dataset: str = Field("dp02", description="Data set whose TAP service is queried.")
    sync: bool = True
    query_timeout: float | None = Field(None, description="Seconds; no limit when omitted.")


class TAPQueryRunnerOptions(TAPOptions):
    queries: list[str]


class TAPQuerySetRunnerOptions(TAPOptions):
    query_set: str = "dp0.1"


class SIAQuerySetRunnerOptions(BusinessOptions):
    dataset: str = Field("dp02", description="Data set whose SIA service is queried.")
    query_set: str = Field("dp02", description="SIA parameter set.")


# --- bosun's own ---------------------------------------------------------------------------


class HTTPLoopOptions(BusinessOptions):
    """HTTPLoop (bosun): one request per execution; the pure-HTTP load."""

    url: str
    method: Literal["GET", "POST", "PUT", "DELETE", "HEAD"] = "GET"
    body: str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = Field(
        None, description="Environment variable holding the token sent as 'Authorization: bearer'."
    )
    timeout: Duration = 30.0
    expect_status: list[int] | None = None
    jitter: Duration = Field(0.0, description="Random wait, up to this, before starting.")
