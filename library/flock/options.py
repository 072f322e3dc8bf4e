"""Business options, with mobu's names and defaults.

Durations accept seconds (`30`, `2.5`) or a compact form (`5s`, `1m`, `1h30m`, `250ms`) and are
stored as float seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object) -> float:
    """`5s`, `1m`, `1h30m`, `250ms` or a number of seconds -> float seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 5s, 1m or 1h30m, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        if text and _PART.sub("", text) == "":
            return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))
    raise ValueError(f"expected a duration like 5s, 1m or 1h30m, got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]


class BusinessOptions(BaseModel):
    """Options every business accepts."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    error_idle_time: Duration = Field(60.0, description="Wait after a failure before restarting.")
    idle_time: Duration = Field(60.0, description="Wait between two executions.")
    jitter: Duration = Field(0.0, description="Random extra wait, up to this, before starting.")


class EmptyLoopOptions(BusinessOptions):
    """EmptyLoop: does nothing but wait, to load the engine and count monkeys."""


class HTTPLoopOptions(BusinessOptions):
    """HTTPLoop: one request per execution; the pure-HTTP load."""

    url: str
    method: Literal["GET", "POST", "PUT", "DELETE", "HEAD"] = "GET"
    body: str | dict | list | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = Field(
        None, description="Environment variable holding the token sent as 'Authorization: bearer'."
    )
    timeout: Duration = 30.0
    expect_status: list[int] | None = None


class NubladoOptions(BusinessOptions):
    """Options of every business that spawns a lab."""

    delete_lab: bool = True
    delete_timeout: Duration = 60.0
    execution_idle_time: Duration = 1.0
    get_node: bool = True
    image: dict | str | None = None
    jupyter_timeout: Duration = 60.0
    max_websocket_message_size: int | None = 10 * 1024 * 1024
    spawn_settle_time: Duration = 10.0
    spawn_timeout: Duration = 600.0
    url_prefix: str = "/nb/"
    working_directory: str | None = None


class NubladoPythonLoopOptions(NubladoOptions):
    code: str = 'print(2+2, end="")'
    max_executions: int = Field(25, ge=1)


class NotebookRunnerOptions(NubladoOptions):
    max_executions: int = Field(25, ge=1)
    repo_url: str | None = None
    repo_ref: str = "main"
    notebooks_dir: str | None = Field(None, description="Local directory of notebooks.")
    exclude_dirs: list[str] = Field(default_factory=list)
    notebooks_to_run: list[str] | None = None


class NotebookRunnerListOptions(NotebookRunnerOptions):
    notebooks_to_run: list[str]


class TAPQueryRunnerOptions(BusinessOptions):
    queries: list[str] | None = None
    query_set: str | None = None
    sync: bool = True
    timeout: Duration = 300.0


class TAPQuerySetRunnerOptions(BusinessOptions):
    query_set: str = "dp0.2"
    sync: bool = True
    timeout: Duration = 300.0
