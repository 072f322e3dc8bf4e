"""Businesses by `type`: name -> options model, implementation, and what it needs to run.

The registry holds every business mobu 19.x has (``lsst-sqre/mobu``,
``models/business/business_config_type.py``) plus bosun's HTTPLoop. The options models are light
(pydantic only) so a flock file validates without importing the HTTP, Jupyter or TAP clients;
the implementation is imported when a monkey first needs it. A business whose implementation
is not in this build (``target=None``) still validates exactly as mobu validates it; running it
stops before any monkey starts, with one line naming what it needs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from library.artifacts import Operation as Op
from library.errors import UserError
from library.flock import options as o

if TYPE_CHECKING:
    from library.flock.businesses.base import Business


@dataclass(frozen=True)
class Entry:
    options: type[o.BusinessOptions]
    target: str | None  # "module:Class"; None when bosun cannot run it yet
    operation: Op  # the event operation one execution records; the summary's main figure
    endpoint: str = "none"  # what one execution talks to: hub, tap, sia, git-lfs, muster, url
    needs: str = ""  # for target=None: what running it needs, in one phrase
    options_required: bool = False  # mobu's `options: Field(...)`: the key must be given
    # The monkey's JSON shows per-business fields (`Business.monkey_data`), as mobu's
    # NubladoBusinessData, NotebookRunnerData, TAPBusinessData and SIABusinessData do.
    data: bool = False


REGISTRY: dict[str, Entry] = {
    "EmptyLoop": Entry(
        o.EmptyLoopOptions, "library.flock.businesses.empty:EmptyLoop", Op.EMPTY_LOOP, "none"
    ),
    "NubladoPythonLoop": Entry(
        o.NubladoPythonLoopOptions,
        "library.flock.businesses.nublado:NubladoPythonLoop",
        Op.EXECUTE_CODE,
        "hub",
        data=True,
    ),
    "NotebookRunnerCounting": Entry(
        o.NotebookRunnerCountingOptions,
        "library.flock.businesses.notebook:NotebookRunnerCounting",
        Op.NOTEBOOK,
        "hub",
        data=True,
    ),
    "NotebookRunnerList": Entry(
        o.NotebookRunnerOptions,
        "library.flock.businesses.notebook:NotebookRunnerList",
        Op.NOTEBOOK,
        "hub",
        data=True,
    ),
    "NotebookRunnerInfinite": Entry(
        o.NotebookRunnerOptions,
        "library.flock.businesses.notebook:NotebookRunnerInfinite",
        Op.NOTEBOOK,
        "hub",
        data=True,
    ),
    "TAPQueryRunner": Entry(
        o.TAPQueryRunnerOptions,
        "library.flock.businesses.tap:TAPQueryRunner",
        Op.TAP_QUERY,
        "tap",
        options_required=True,
        data=True,
    ),
    "TAPQuerySetRunner": Entry(
        o.TAPQuerySetRunnerOptions,
        "library.flock.businesses.tap:TAPQuerySetRunner",
        Op.TAP_QUERY,
        "tap",
        data=True,
    ),
    "SIAQuerySetRunner": Entry(
        o.SIAQuerySetRunnerOptions,
        "library.flock.businesses.sia:SIAQuerySetRunner",
        Op.SIA_QUERY,
        "sia",
        data=True,
    ),
    "GitLFS": Entry(
        o.GitLFSOptions,
        "library.flock.businesses.gitlfs:GitLFS",
        Op.GIT_LFS,
        "git-lfs",
        options_required=True,
    ),
    "Muster": Entry(
        o.MusterOptions,
        "library.flock.businesses.muster:Muster",
        Op.MUSTER,
        "muster",
    ),
    # bosun's own: not a mobu business.
    "HTTPLoop": Entry(
        o.HTTPLoopOptions, "library.flock.businesses.http:HTTPLoop", Op.HTTP_REQUEST, "url"
    ),
}

# Older mobu names that existing flock files still use: accepted, with a notice.
ALIASES = {"JupyterPythonLoop": "NubladoPythonLoop"}

# Names mobu no longer has: refused as mobu refuses them, saying what replaced them.
RETIRED = {
    "NotebookRunner": "mobu 15 replaced it with NotebookRunnerCounting (and NotebookRunnerList)",
    "JupyterLoginLoop": "mobu merged it into JupyterPythonLoop, now NubladoPythonLoop",
    "JupyterJitterLoginLoop": "mobu retired it: set `jitter` on NubladoPythonLoop",
}


def canonical(name: str) -> str:
    """The registered name for `name` (resolving old aliases); ValueError listing known types."""
    name = ALIASES.get(name, name)
    if name in RETIRED:
        raise ValueError(f"business type {name!r} no longer exists: {RETIRED[name]}")
    if name not in REGISTRY:
        known = ", ".join(sorted([*REGISTRY, *ALIASES]))
        raise ValueError(f"unknown business type {name!r} (known: {known})")
    return name


def main_operation(name: str) -> str:
    return REGISTRY[canonical(name)].operation


def runnable(name: str) -> str | None:
    """None when bosun can run this business; otherwise one line saying what it needs."""
    entry = REGISTRY[canonical(name)]
    if entry.target is not None:
        return None
    return f"business {canonical(name)} validates but cannot run here: it needs {entry.needs}"


def business_class(name: str) -> type[Business[Any]]:
    entry = REGISTRY[canonical(name)]
    if entry.target is None:
        raise UserError(runnable(name))
    module, _, cls = entry.target.partition(":")
    found: type[Business[Any]] = getattr(importlib.import_module(module), cls)
    return found
