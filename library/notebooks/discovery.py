"""Which notebooks of a tree to run.

Rules, in order: every ``**/*.ipynb`` (checkpoints and hidden directories never count); drop
those under an excluded directory; keep only those matching an ``include`` glob when any is
given; drop those matching an ``exclude`` glob; then, when the deployed services are known,
keep a notebook only if every service it requires is deployed. A notebook states what it needs
in ``metadata.bosun.required_services`` (or mobu's ``metadata.mobu.required_applications``);
without that, a name ``<service>_*.ipynb`` (or ``<service>.ipynb``) for a known service means it
needs that service.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# Phalanx application names that notebooks are written against.
KNOWN_SERVICES = frozenset(
    {
        "nublado",
        "tap",
        "ssotap",
        "livetap",
        "sia",
        "datalink",
        "cutout",
        "vo-cutouts",
        "hips",
        "butler",
        "portal",
        "sasquatch",
        "efd",
        "qserv",
        "siav2",
        "ssr",
        "obsloctap",
        "consdb",
        "noteburst",
        "times-square",
        "squareone",
        "gafaelfawr",
        "mobu",
    }
)


@dataclass
class Discovery:
    """What discovery kept and, for each notebook it dropped, why."""

    root: Path
    selected: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def to_dict(self) -> dict:
        return {
            "selected": [self.relative(p) for p in self.selected],
            "skipped": dict(sorted(self.skipped.items())),
        }


def required_services(path: Path, known: frozenset[str] | set[str] = KNOWN_SERVICES) -> set[str]:
    """Services the notebook at PATH needs: from its metadata, else from its name."""
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata") or {}
    except (OSError, ValueError):
        metadata = {}
    for section, key in (("bosun", "required_services"), ("mobu", "required_applications")):
        declared = (metadata.get(section) or {}).get(key)
        if declared is not None:
            return {str(s) for s in declared}
    return services_from_name(path.name, known)


def services_from_name(name: str, known: frozenset[str] | set[str] = KNOWN_SERVICES) -> set[str]:
    stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
    # Longest first: "vo-cutouts_x" must not be read as a service "vo".
    for service in sorted(known, key=len, reverse=True):
        if stem == service or stem.startswith(service + "_"):
            return {service}
    return set()


def _matches(rel: str, patterns: list[str]) -> bool:
    name = PurePosixPath(rel).name
    return any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in patterns)


def _excluded_dir(rel: str, exclude_dirs: list[str]) -> str | None:
    parents = PurePosixPath(rel).parents
    rel_dirs = [p.as_posix() for p in parents if p.as_posix() != "."]
    for wanted in exclude_dirs:
        wanted = wanted.strip("/")
        for d in rel_dirs:
            if d == wanted or PurePosixPath(d).name == wanted:
                return wanted
    return None


def discover(
    root: Path,
    *,
    exclude_dirs: list[str] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    services: list[str] | set[str] | None = None,
    known_services: frozenset[str] | set[str] = KNOWN_SERVICES,
) -> Discovery:
    """Apply the rules above to the tree at ROOT; ``services=None`` means no service filter."""
    root = root.resolve()
    found = Discovery(root)
    deployed = None if services is None else set(services)
    known = set(known_services) | (deployed or set())
    for path in sorted(root.rglob("*.ipynb")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in PurePosixPath(rel).parts):
            continue
        hit = _excluded_dir(rel, exclude_dirs or [])
        if hit:
            found.skipped[rel] = f"in excluded directory {hit}"
            continue
        if include and not _matches(rel, include):
            found.skipped[rel] = "matches no include glob"
            continue
        if exclude and _matches(rel, exclude):
            found.skipped[rel] = "matches an exclude glob"
            continue
        if deployed is not None:
            missing = required_services(path, known) - deployed
            if missing:
                found.skipped[rel] = "needs services not deployed: " + ", ".join(sorted(missing))
                continue
        found.selected.append(path)
    return found
