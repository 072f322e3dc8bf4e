"""The sandbox's service discovery document, in Repertoire's format (`library.repertoire`).

The sandbox serves one catalogue and one image collection; it lists them under the dataset
name ``sandbox`` and also under the names Phalanx flocks use (``dp02``, ``dp1``, mobu's
default ``dp02``), so flocks copied from Phalanx find a TAP and an SIA service here without
edits. Any other dataset name is unknown, as on a real platform.
"""

from __future__ import annotations

from typing import Any

DATASETS = ("sandbox", "dp02", "dp1")
SIA_STANDARD = "ivo://ivoa.net/std/SIA#query-2.0"


def document(
    *,
    hub_url: str | None,
    tap_url: str | None,
    sia_url: str | None,
    lfs_url: str | None,
    extra_internal: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``/discovery`` document for the sandbox's running services."""
    services: dict[str, Any] = {}
    if tap_url:
        services["tap"] = {"url": tap_url}
    if sia_url:
        services["sia"] = {
            "url": sia_url,
            "versions": {
                "sia-query-2.0": {
                    "url": sia_url.rstrip("/") + "/siap2.xml",
                    "ivoa_standard_id": SIA_STANDARD,
                }
            },
        }
    datasets = {
        name: {"description": "bosun sandbox: synthetic catalogue and images", "services": services}
        for name in DATASETS
    }
    internal = {}
    if lfs_url:
        internal["giftless"] = {"url": lfs_url, "title": "Git LFS (giftless)"}
    for name, url in (extra_internal or {}).items():
        internal[name] = {"url": url}
    applications = ["repertoire"]
    applications += ["nublado"] if hub_url else []
    applications += ["tap"] if tap_url else []
    applications += ["sia"] if sia_url else []
    applications += ["giftless"] if lfs_url else []
    return {
        "applications": sorted(applications),
        "datasets": datasets if services else {},
        "environment_name": "bosun-sandbox",
        "services": {
            "internal": internal,
            "ui": {"nublado": {"url": hub_url}} if hub_url else {},
        },
    }
