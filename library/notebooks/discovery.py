"""Which notebooks of a repository to run, as mobu decides it, and why each other one is skipped.

mobu's rules (``lsst-sqre/mobu``: ``services/notebook_finder.py``, ``models/repo.py``):

1. every ``**/*.ipynb`` of the repository;
2. the collection rules, in order: the flock's (or command line's) ``collection_rules``, then
   those of the repository's own ``mobu.yaml``, then every ``exclude_dirs`` (both sources) as
   one ``exclude_union_of`` rule of ``DIR/**``. An ``intersect_union_of`` rule keeps only what
   one of its patterns matches, an ``exclude_union_of`` rule drops it. Patterns are pathlib
   glob patterns relative to the repository root (``**`` is any number of directories);
3. a notebook whose ``metadata.mobu.required_applications`` (or bosun's
   ``metadata.bosun.required_services``) names an application that is not deployed is dropped.

bosun differs in three ways, all visible in the skip reasons: notebooks under a hidden
directory (``.ipynb_checkpoints``) never run; the application filter applies only when the
deployed services are given (flocks give the applications of the platform's service-discovery
document; ``notebook run_repo`` gives ``--services``); and the SQR-080
file-name convention (``<service>_*.ipynb`` needs ``<service>``) applies only when turned on,
by the caller (``name_convention=True``) or by the repository (``bosun.yaml`` holding
``name_convention: true``). ``--include``/``--exclude`` globs of the command line are extra
rules applied after mobu's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from library import yamlio
from library.errors import UserError
from library.flock.options import CollectionRule, Filterable
from library.notebooks.files import outside

MOBU_CONFIG = "mobu.yaml"
BOSUN_CONFIG = "bosun.yaml"

# Phalanx application names that notebooks are written against (file-name convention only).
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


class RepoConfig(Filterable):
    """A repository's ``mobu.yaml``: mobu refuses unknown keys, so bosun does too."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BosunRepoConfig(BaseModel):
    """A repository's ``bosun.yaml``: what bosun adds to mobu's rules for this repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name_convention: bool = False


@dataclass
class Discovery:
    """What discovery kept and, for each notebook it dropped, which rule dropped it."""

    root: Path
    selected: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)  # the rules applied, in order

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def to_dict(self) -> dict:
        return {
            "selected": [self.relative(p) for p in self.selected],
            "skipped": dict(sorted(self.skipped.items())),
            "rules": list(self.rules),
        }


@lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    """A pathlib glob pattern (Python 3.13 semantics, as mobu runs) as a regex on a relative
    path: ``**`` is zero or more whole segments; ``*``, ``?`` and ``[...]`` stay in a segment."""
    segments = [s for s in pattern.strip("/").split("/") if s not in ("", ".")]
    out = ""
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out += ".*" if last else "(?:[^/]+/)*"
            continue
        part = ""
        j = 0
        while j < len(seg):
            c = seg[j]
            if c == "*":
                part += "[^/]*"
            elif c == "?":
                part += "[^/]"
            elif c == "[":
                end = seg.find("]", j + 1)
                if end == -1:
                    part += re.escape(c)
                else:
                    body = seg[j + 1 : end]
                    if body.startswith("!"):
                        body = "^" + body[1:]
                    part += f"[{body}]"
                    j = end
            else:
                part += re.escape(c)
            j += 1
        out += part + ("" if last else "/")
    return re.compile(out + r"\Z", re.DOTALL)


def matches(rel: str, pattern: str) -> bool:
    """Whether the repository-relative path REL is one of the paths PATTERN globs."""
    return _pattern(pattern).match(rel) is not None


def _read_yaml(root: Path, path: Path) -> Any:
    why = outside(root, path)  # the repository's own file, as its notebooks
    if why:
        raise UserError(f"{path}: {why}; a repository's {path.name} must be its own file")
    return yamlio.loads(yamlio.read_text(path, "repository config"), str(path))


def read_repo_config(root: Path) -> RepoConfig:
    """The repository's ``mobu.yaml`` (empty rules when absent); UserError naming a bad key."""
    path = root / MOBU_CONFIG
    if not path.is_file():
        return RepoConfig()
    return _validated(RepoConfig, _read_yaml(root, path), path)


def read_bosun_config(root: Path) -> BosunRepoConfig:
    path = root / BOSUN_CONFIG
    if not path.is_file():
        return BosunRepoConfig()
    return _validated(BosunRepoConfig, _read_yaml(root, path), path)


def _validated(model: type[BaseModel], data: Any, path: Path):
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
        raise UserError(f"{path}: {loc}: {error['msg']}") from None


def required_applications(path: Path) -> tuple[set[str], str] | None:
    """What the notebook's metadata says it needs, and where it says it; None if it says
    nothing. mobu reads ``metadata.mobu.required_applications``; bosun also reads
    ``metadata.bosun.required_services``."""
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata") or {}
    except (OSError, ValueError, AttributeError):
        return None
    for section, key in (("mobu", "required_applications"), ("bosun", "required_services")):
        declared = (metadata.get(section) or {}).get(key)
        if declared is not None:
            return {str(s) for s in declared}, f"metadata.{section}.{key}"
    return None


def services_from_name(name: str, known: frozenset[str] | set[str] = KNOWN_SERVICES) -> set[str]:
    """SQR-080's convention: ``<service>_*.ipynb`` or ``<service>.ipynb`` needs ``<service>``."""
    stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
    # Longest first: "vo-cutouts_x" must not be read as a service "vo".
    for service in sorted(known, key=len, reverse=True):
        if stem == service or stem.startswith(service + "_"):
            return {service}
    return set()


@dataclass(frozen=True)
class _Rule:
    rule: CollectionRule
    label: str  # e.g. "collection_rules[1] exclude_union_of (mobu.yaml)"


def _rules(
    collection_rules: list[CollectionRule],
    exclude_dirs: list[str],
    repo: RepoConfig,
) -> list[_Rule]:
    """mobu's order: caller's rules, the repo's, then every exclude_dirs as one exclude rule."""
    out = [
        _Rule(r, f"collection_rules[{i}] {r.type} (options)")
        for i, r in enumerate(collection_rules)
    ]
    out += [
        _Rule(r, f"collection_rules[{i}] {r.type} ({MOBU_CONFIG})")
        for i, r in enumerate(repo.collection_rules)
    ]
    dirs = sorted({d.strip("/") for d in [*exclude_dirs, *repo.exclude_dirs] if d.strip("/")})
    if dirs:
        sources = []
        if exclude_dirs:
            sources.append("options")
        if repo.exclude_dirs:
            sources.append(MOBU_CONFIG)
        rule = CollectionRule(type="exclude_union_of", patterns=[f"{d}/**" for d in dirs])
        out.append(_Rule(rule, f"exclude_dirs ({', '.join(sources)})"))
    return out


def discover(
    root: Path,
    *,
    exclude_dirs: list[str] | None = None,
    collection_rules: list[CollectionRule | dict] | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    services: list[str] | set[str] | None = None,
    name_convention: bool | None = None,
    known_services: frozenset[str] | set[str] = KNOWN_SERVICES,
) -> Discovery:
    """Apply the rules above to the tree at ROOT.

    ``services=None`` means the deployed services are unknown: no application filter.
    ``name_convention=None`` leaves the choice to the repository's ``bosun.yaml``.
    """
    root = root.resolve()
    found = Discovery(root)
    repo = read_repo_config(root)
    if name_convention is None:
        name_convention = read_bosun_config(root).name_convention
        convention_source = BOSUN_CONFIG
    else:
        convention_source = "the caller"
    rules = _rules(
        [
            r if isinstance(r, CollectionRule) else CollectionRule(**r)
            for r in collection_rules or []
        ],
        list(exclude_dirs or []),
        repo,
    )
    found.rules = [f"{r.label}: {', '.join(r.rule.patterns)}" for r in rules]
    deployed = None if services is None else set(services)
    known = set(known_services) | (deployed or set())
    for path in sorted(root.rglob("*.ipynb")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in PurePosixPath(rel).parts[:-1]):
            found.skipped[rel] = "in a hidden directory (bosun never runs checkpoint copies)"
            continue
        why = outside(root, path) or _dropped_by(rel, rules)
        if why is None and include and not any(matches(rel, p) or _name(rel, p) for p in include):
            why = "--include: matches none of " + ", ".join(include)
        if why is None and exclude:
            hit = next((p for p in exclude if matches(rel, p) or _name(rel, p)), None)
            if hit:
                why = f"--exclude: matches {hit!r}"
        if why is None and deployed is not None:
            why = _needs(path, deployed, known, name_convention, convention_source)
        if why is None:
            found.selected.append(path)
        else:
            found.skipped[rel] = why
    return found


def _name(rel: str, pattern: str) -> bool:
    # A pattern without a slash may name the file alone (bosun's --include/--exclude).
    return "/" not in pattern and matches(PurePosixPath(rel).name, pattern)


def _dropped_by(rel: str, rules: list[_Rule]) -> str | None:
    for r in rules:
        hit = next((p for p in r.rule.patterns if matches(rel, p)), None)
        if r.rule.type == "exclude_union_of" and hit is not None:
            return f"{r.label}: matches {hit!r}"
        if r.rule.type == "intersect_union_of" and hit is None:
            return f"{r.label}: matches none of {', '.join(repr(p) for p in r.rule.patterns)}"
    return None


def _needs(
    path: Path, deployed: set[str], known: set[str], convention: bool, convention_source: str
) -> str | None:
    declared = required_applications(path)
    if declared is not None:
        needed, where = declared
        missing = needed - deployed
        if missing:
            return f"{where}: needs {', '.join(sorted(missing))}, not deployed"
        return None
    if convention:
        missing = services_from_name(path.name, known) - deployed
        if missing:
            return (
                f"file-name convention (SQR-080, turned on by {convention_source}): needs "
                f"{', '.join(sorted(missing))}, not deployed"
            )
    return None


def listing(found: Discovery) -> str:
    """What `--list` prints: the notebooks that would run, then each skipped one and its rule."""
    lines = [f"run   {found.relative(p)}" for p in found.selected]
    lines += [f"skip  {rel}: {why}" for rel, why in sorted(found.skipped.items())]
    lines += [f"rule  {rule}" for rule in found.rules]
    lines.append(f"{len(found.selected)} to run, {len(found.skipped)} skipped")
    return "\n".join(lines) + "\n"
