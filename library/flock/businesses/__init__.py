"""Businesses by `type`: name -> options model and (lazily imported) implementation.

The options models are light (pydantic only) so a flock file validates without importing the
HTTP, Jupyter or TAP clients; the implementation is imported when a monkey first needs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from library.flock import options as o


@dataclass(frozen=True)
class Entry:
    options: type[o.BusinessOptions]
    target: str  # "module:Class"
    operation: str  # the event operation one execution records; the summary's main figure


REGISTRY: dict[str, Entry] = {
    "EmptyLoop": Entry(
        o.EmptyLoopOptions, "library.flock.businesses.empty:EmptyLoop", "empty_loop"
    ),
    "HTTPLoop": Entry(o.HTTPLoopOptions, "library.flock.businesses.http:HTTPLoop", "http_request"),
    "NubladoPythonLoop": Entry(
        o.NubladoPythonLoopOptions,
        "library.flock.businesses.nublado:NubladoPythonLoop",
        "execute_code",
    ),
    "NotebookRunner": Entry(
        o.NotebookRunnerOptions, "library.flock.businesses.notebook:NotebookRunner", "notebook"
    ),
    "NotebookRunnerCounting": Entry(
        o.NotebookRunnerOptions,
        "library.flock.businesses.notebook:NotebookRunnerCounting",
        "notebook",
    ),
    "NotebookRunnerList": Entry(
        o.NotebookRunnerListOptions,
        "library.flock.businesses.notebook:NotebookRunnerList",
        "notebook",
    ),
    "NotebookRunnerInfinite": Entry(
        o.NotebookRunnerOptions,
        "library.flock.businesses.notebook:NotebookRunnerInfinite",
        "notebook",
    ),
    "TAPQueryRunner": Entry(
        o.TAPQueryRunnerOptions, "library.flock.businesses.tap:TAPQueryRunner", "tap_query"
    ),
    "TAPQuerySetRunner": Entry(
        o.TAPQuerySetRunnerOptions, "library.flock.businesses.tap:TAPQuerySetRunner", "tap_query"
    ),
}
# Older mobu names that existing flock files still use.
ALIASES = {"JupyterPythonLoop": "NubladoPythonLoop"}


def canonical(name: str) -> str:
    """The registered name for `name` (resolving old aliases); ValueError listing known types."""
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        known = ", ".join(sorted([*REGISTRY, *ALIASES]))
        raise ValueError(f"unknown business type {name!r} (known: {known})")
    return name


def main_operation(name: str) -> str:
    return REGISTRY[canonical(name)].operation


def business_class(name: str) -> type:
    module, _, cls = REGISTRY[canonical(name)].target.partition(":")
    return getattr(importlib.import_module(module), cls)
