"""Service discovery as Phalanx publishes it: Repertoire's ``GET {base}/discovery`` document.

mobu finds the TAP and SIA service of a flock's ``dataset`` (and Muster's URL) through
Repertoire's client, ``rubin.repertoire.DiscoveryClient``. That client needs Python 3.12 (bosun
runs on 3.11), so this module reads the same document with the same rules, on the fields the
businesses use: ``datasets.NAME.services.SERVICE.url`` (`url_for_data`),
``services.internal.NAME.url`` (`url_for_internal`), ``services.ui.NAME.url`` (`url_for_ui`).
Fields it does not use are accepted and ignored, so newer documents still load.

Where a business's endpoint comes from (`service_url`): a URL the user gave for that service
(flag or environment) is used as is, for every dataset; otherwise the discovery document (flag,
environment, or the sandbox's) decides by dataset; otherwise the sandbox's own service.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from library.errors import UserError

DISCOVERY_ROUTE = "/discovery"
TIMEOUT_S = 10.0


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApiVersion(_Doc):
    url: str
    ivoa_standard_id: str | None = None


class Service(_Doc):
    url: str
    title: str | None = None
    required_scopes: list[str] = Field(default_factory=list)
    versions: dict[str, ApiVersion] = Field(default_factory=dict)


class Dataset(_Doc):
    description: str | None = None
    services: dict[str, Service] = Field(default_factory=dict)


class Services(_Doc):
    internal: dict[str, Service] = Field(default_factory=dict)
    ui: dict[str, Service] = Field(default_factory=dict)


class Discovery(_Doc):
    """Repertoire's discovery document (the subset bosun reads)."""

    applications: list[str] = Field(default_factory=list)
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    environment_name: str | None = None
    services: Services = Field(default_factory=Services)

    def url_for_data(self, service: str, dataset: str, version: str | None = None) -> str | None:
        """Base URL of SERVICE (``tap``, ``sia``...) for DATASET, as Repertoire's client."""
        info = self.datasets.get(dataset)
        entry = info.services.get(service) if info else None
        if entry is None:
            return None
        if version is not None:
            found = entry.versions.get(version)
            return found.url if found else None
        return entry.url

    def url_for_internal(self, service: str, version: str | None = None) -> str | None:
        entry = self.services.internal.get(service)
        if entry is None:
            return None
        if version is not None:
            found = entry.versions.get(version)
            return found.url if found else None
        return entry.url

    def url_for_ui(self, service: str) -> str | None:
        entry = self.services.ui.get(service)
        return entry.url if entry else None

    def datasets_with(self, service: str) -> list[str]:
        return sorted(name for name, info in self.datasets.items() if service in info.services)


def parse(data: Any, source: str) -> Discovery:
    """The document from its JSON data; UserError naming SOURCE when it is not one."""
    try:
        return Discovery.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise UserError(
            f"service discovery document {source}: {where}: {first['msg']}: is this a "
            "Repertoire /discovery document?"
        ) from None


def fetch(base_url: str, token: str | None = None, timeout: float = TIMEOUT_S) -> Discovery:
    """GET ``{base_url}/discovery`` and read it (blocking; call from a thread in asyncio)."""
    import requests

    url = base_url.rstrip("/") + DISCOVERY_ROUTE
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(url, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise UserError(
            f"service discovery at {url} did not answer ({type(exc).__name__}): check "
            "--discovery-url / $BOSUN_DISCOVERY_URL"
        ) from None
    if response.status_code != 200:
        raise UserError(
            f"service discovery at {url} answered HTTP {response.status_code}: check "
            "--discovery-url / $BOSUN_DISCOVERY_URL"
        )
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        raise UserError(f"service discovery at {url} did not return JSON") from None
    return parse(data, url)


def service_url(
    service: str,
    dataset: str | None,
    *,
    given_url: str | None,
    given_by_user: bool,
    discovery: Discovery | None,
    discovery_url: str | None = None,
) -> str:
    """The endpoint of SERVICE (``tap``/``sia``) for DATASET.

    GIVEN_URL is the platform's URL for the service; GIVEN_BY_USER says it came from a flag
    or the environment (it then wins for every dataset, as the user pointed there). Otherwise
    the discovery document decides by dataset, as mobu does; without a document, GIVEN_URL
    (the sandbox's) is used.
    """
    if given_url and given_by_user:
        return given_url
    if discovery is not None and dataset:
        url = discovery.url_for_data(service, dataset)
        if url:
            return url
        known = ", ".join(discovery.datasets_with(service)) or "none"
        raise UserError(
            f"dataset {dataset!r}: no {service.upper()} service for it in service discovery "
            f"({discovery_url or 'the discovery document'}; datasets with "
            f"{service.upper()}: {known}): set the flock's dataset to one of them"
        )
    if given_url:
        return given_url
    raise UserError(
        f"no {service.upper()} service: pass --{service}-url URL or --discovery-url URL, or "
        "start the sandbox with ./run_toolbox.py sandbox up"
    )
