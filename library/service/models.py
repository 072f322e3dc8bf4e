"""The API's JSON shapes, as mobu's (``lsst-sqre/mobu``: ``models/flock.py``, ``monkey.py``,
``solitary.py``, ``summary.py``, ``business/base.py``), for the OpenAPI docs and responses.

Requests use the flock model of ``library.flock.models`` itself, so the API, flock files and
the CLI validate with one schema. What bosun adds appears only where mobu has no value (a
paused flock's ``"paused": true``, a monkey's ``PAUSED`` state); a monkey's token is never shown
(``"***"``), where mobu shows it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from library.flock.models import BusinessConfig as _BusinessConfig
from library.flock.models import FlockConfig, Group, User


class MonkeyState(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"
    PAUSED = "PAUSED"  # bosun: the flock is paused


class AuthenticatedUser(BaseModel):
    username: str
    uidnumber: int | None = None
    gidnumber: int | None = None
    groups: list[Group] = Field(default_factory=list)
    scopes: list[str]
    token: str = Field(..., title="Always '***': bosun does not show tokens")


class BusinessData(BaseModel):
    name: str = Field(..., title="Type of business", examples=["EmptyLoop"])
    failure_count: int
    success_count: int
    refreshing: bool
    image: dict[str, Any] | None = None
    notebook: str | None = None
    running_code: str | None = None
    running_query: str | None = None


class MonkeyData(BaseModel):
    name: str
    state: MonkeyState
    user: AuthenticatedUser
    business: BusinessData


class FlockData(BaseModel):
    name: str
    config: FlockConfig
    monkeys: list[MonkeyData]


class FlockSummary(BaseModel):
    name: str
    business: str
    start_time: datetime | None
    monkey_count: int
    success_count: int
    failure_count: int
    paused: bool | None = Field(None, title="bosun: present (true) when the flock is paused")


class CombinedSummary(BaseModel):
    flocks: list[FlockSummary]
    ci_manager: dict[str, Any] | None = None


class SolitaryConfig(BaseModel):
    """One business run once as one user (mobu's ``POST /run``)."""

    user: User
    scopes: list[str]
    business: _BusinessConfig


class SolitaryResult(BaseModel):
    success: bool
    error: str | None = None
    log: str


class ErrorDetail(BaseModel):
    loc: list[str] | None = None
    msg: str
    type: str


class ErrorModel(BaseModel):
    """safir's error shape, which mobu answers with."""

    detail: list[ErrorDetail]
