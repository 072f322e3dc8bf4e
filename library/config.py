"""Project configuration: one YAML document, presets, overrides and where every value came from.

TOPSAIL's semantics without its traps:

- ``ci_presets.<name>`` is a flat map ``dotted.key: value``; ``extends: [a, b]`` applies those
  presets at its position in the map (first: the preset's own keys win; last: the parents win).
- Presets and overrides may only set keys that exist; a dict or list value replaces the subtree.
- Order: base file, then presets in the order named, then overrides (``/var`` lines, ``--var``
  options, ``$ARTIFACT_DIR/variable_overrides.yaml``). Later wins.
- Everything is applied to a copy and committed at the end: a failing preset changes nothing.

``config.project`` is the current project config (a context variable), so orchestration code
reads ``config.project.get_config("tests.tap.count")`` like TOPSAIL code does.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import difflib
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from library import redact, yamlio
from library.errors import ConfigError

PRESETS_KEY = "ci_presets"
OVERRIDES_FILE = "variable_overrides.yaml"
_MISSING = object()

_current: contextvars.ContextVar[ProjectConfig | None] = contextvars.ContextVar(
    "bosun_project_config", default=None
)
_frozen: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bosun_config_frozen", default=None
)


def __getattr__(name: str):
    # ``config.project`` is the current project config, as TOPSAIL code expects.
    if name == "project":
        return current()
    raise AttributeError(f"module 'library.config' has no attribute {name!r}")


def repo_root() -> Path:
    """The checkout bosun runs from (the directory holding ``projects/``)."""
    return Path(__file__).resolve().parent.parent


def projects_dir() -> Path:
    return repo_root() / "projects"


def available_projects() -> list[str]:
    return sorted(p.parent.parent.name for p in projects_dir().glob("*/testing/config.yaml"))


def project_testing_dir(project: str) -> Path:
    """``projects/<project>/testing``; an unknown project is an error listing the known ones."""
    path = projects_dir() / project / "testing"
    if "/" in project or project.startswith(".") or not (path / "config.yaml").is_file():
        known = ", ".join(available_projects()) or "none"
        raise ConfigError(
            f"unknown project {project!r}: no projects/{project}/testing/config.yaml "
            f"(available: {known})"
        )
    return path


# ---------------------------------------------------------------------------- dotted keys


def _split(key: str) -> list[str]:
    if not isinstance(key, str) or not key or any(part == "" for part in key.split(".")):
        raise ConfigError(
            f"invalid config key {key!r}: expected dotted names like 'tests.tap.count'"
        )
    return key.split(".")


def _step(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        if part in node:
            return node[part]
        return _MISSING
    if isinstance(node, list) and part.lstrip("-").isdigit():
        index = int(part)
        if -len(node) <= index < len(node):
            return node[index]
    return _MISSING


def _lookup(data: Any, key: str) -> Any:
    node = data
    for part in _split(key):
        node = _step(node, part)
        if node is _MISSING:
            return _MISSING
    return node


def _all_paths(node: Any, prefix: str = "") -> Iterator[str]:
    items: Iterable[tuple[Any, Any]]
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        path = f"{prefix}.{k}" if prefix else str(k)
        yield path
        yield from _all_paths(v, path)


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict | list) and node:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            yield from _leaves(v, f"{prefix}.{k}")
    else:
        yield prefix, node


def nearest_key(data: Any, key: str) -> str | None:
    """The existing dotted key most like ``key`` (for 'did you mean' errors)."""
    paths = [p for p in _all_paths(data) if not p.startswith(PRESETS_KEY + ".")]
    close = difflib.get_close_matches(key, paths, n=1, cutoff=0.5)
    if close:
        return close[0]
    # Fall back to the deepest existing prefix: it tells where the typo starts.
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if _lookup(data, prefix) is not _MISSING:
            return prefix
    return None


# ---------------------------------------------------------------------------- the config


@dataclass
class _State:
    """Everything a layer can change; copied before a layer is applied, swapped in after."""

    data: dict
    history: dict[str, list[tuple[int, str, Any]]] = field(default_factory=dict)
    presets_applied: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)


class ProjectConfig:
    """A loaded project config with its layers (see the module docstring)."""

    def __init__(self, data: dict, path: Path | None = None, project: str | None = None):
        if not isinstance(data, dict):
            where = path or "config"
            raise ConfigError(f"{where}: the config must be a YAML mapping at top level")
        self.path = path
        self.project = project
        self._seq = itertools.count()
        self._state = _State(data=copy.deepcopy(data))
        for key, subtree in self._state.data.items():
            if key != PRESETS_KEY:
                for leaf, value in _leaves(subtree, str(key)):
                    self._state.history[leaf] = [(next(self._seq), "base", value)]

    # -- reading

    def get_config(self, key: str, default: Any = _MISSING, *, print: bool = False) -> Any:
        """The value at a dotted key (a copy). Without a default, a missing key is an error."""
        value = _lookup(self._state.data, key)
        if value is _MISSING:
            if default is not _MISSING:
                return default
            raise ConfigError(self._unknown_key_message(key, "config"))
        return copy.deepcopy(value)

    def effective(self) -> dict:
        """A deep copy of the whole effective config."""
        return copy.deepcopy(self._state.data)

    @property
    def presets_applied(self) -> list[str]:
        return list(self._state.presets_applied)

    @property
    def overrides(self) -> dict[str, Any]:
        return copy.deepcopy(self._state.overrides)

    def provenance(self) -> dict[str, str]:
        """For every leaf, the layer that set it last."""
        return {leaf: entries[-1][1] for leaf, entries in sorted(self._state.history.items())}

    def explain(self, key: str) -> list[tuple[str, str, Any]]:
        """The layers that set ``key`` (or leaves under it), in order: (layer, leaf, value)."""
        if _lookup(self._state.data, key) is _MISSING:
            raise ConfigError(self._unknown_key_message(key, "--explain"))
        rows = []
        for leaf, entries in self._state.history.items():
            if leaf == key or leaf.startswith(key + "."):
                rows.extend((seq, layer, leaf, value) for seq, layer, value in entries)
        return [(layer, leaf, value) for _, layer, leaf, value in sorted(rows, key=lambda r: r[0])]

    def presets(self) -> dict[str, Any]:
        presets = self._state.data.get(PRESETS_KEY) or {}
        if not isinstance(presets, dict):
            raise ConfigError(f"{self._where()}: '{PRESETS_KEY}' must be a mapping of preset names")
        return presets

    # -- writing

    def set_config(self, key: str, value: Any, *, source: str = "set_config") -> None:
        """Set an existing key (a dict or list value replaces the subtree)."""
        frozen_by = _frozen.get()
        if frozen_by is not None:
            raise ConfigError(
                f"set_config({key!r}) refused inside the Parallel block {frozen_by!r}: "
                "set the config before the block"
            )
        with self._transaction() as state:
            self._assign(state, key, value, source, context="config")

    def apply_presets(self, names: Iterable[str]) -> None:
        """Apply presets in the order named; all or nothing."""
        with self._transaction() as state:
            for name in names:
                for op in self._preset_ops(name, []):
                    if op[0] == "mark":
                        state.presets_applied.append(op[1])
                    else:
                        _, key, value, preset = op
                        self._assign(
                            state, key, value, f"preset:{preset}", context=f"preset {preset!r}"
                        )

    def apply_overrides(self, overrides: Mapping[str, Any], source: str) -> None:
        """Apply ``dotted.key: value`` overrides from one source (cli, trigger, file)."""
        with self._transaction() as state:
            for key, value in overrides.items():
                self._assign(
                    state, str(key), value, f"var:{source}", context=f"override ({source})"
                )
                state.overrides[str(key)] = copy.deepcopy(value)

    def validate(self, schema_path: Path | None = None) -> None:
        """Validate the effective config against ``config.schema.json`` when the project has one."""
        if schema_path is None:
            if self.path is None:
                return
            schema_path = self.path.parent / "config.schema.json"
        if not schema_path.is_file():
            return
        import jsonschema

        try:
            schema = json.loads(schema_path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{schema_path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}"
            ) from None
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(self._state.data), key=lambda e: list(e.path))
        if errors:
            err = errors[0]
            where = ".".join(str(p) for p in err.path) or "(top level)"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ConfigError(f"{schema_path.name}: config key {where}: {err.message}{more}")

    # -- snapshot

    def write_snapshot(self, directory: Path) -> None:
        """Write config.yaml (redacted), config_provenance.yaml, presets_applied, overrides."""
        directory.mkdir(parents=True, exist_ok=True)
        yamlio.dump_file(redact.redact_data(self._state.data), directory / "config.yaml")
        yamlio.dump_file(self.provenance(), directory / "config_provenance.yaml")
        (directory / "presets_applied").write_text(
            "".join(f"{name}\n" for name in self._state.presets_applied)
        )
        yamlio.dump_file(redact.redact_data(self._state.overrides), directory / OVERRIDES_FILE)

    # -- internals

    def _where(self) -> str:
        return str(self.path) if self.path else "config"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_State]:
        state = copy.deepcopy(self._state)
        yield state
        self._state = state  # only reached when every assignment succeeded

    def _unknown_key_message(self, key: str, context: str, data: Any = None) -> str:
        near = nearest_key(self._state.data if data is None else data, key)
        hint = f" (nearest existing key: '{near}')" if near else ""
        return f"{context}: key '{key}' does not exist in {self._where()}{hint}"

    def _assign(self, state: _State, key: str, value: Any, layer: str, context: str) -> None:
        parts = _split(key)
        if parts[0] == PRESETS_KEY:
            raise ConfigError(f"{context}: cannot set '{key}': presets are not settable")
        parent = _lookup(state.data, ".".join(parts[:-1])) if len(parts) > 1 else state.data
        last = parts[-1]
        if parent is _MISSING or _step(parent, last) is _MISSING:
            raise ConfigError(
                self._unknown_key_message(key, context, state.data)
                + "; a preset or override can only set keys the config already has"
            )
        value = copy.deepcopy(value)
        if isinstance(parent, dict):
            parent[last] = value
        else:
            parent[int(last)] = value
        new_leaves = dict(_leaves(value, key))
        # A replaced subtree drops the history of the leaves it no longer has.
        for leaf in [leaf for leaf in state.history if leaf == key or leaf.startswith(key + ".")]:
            if leaf not in new_leaves:
                del state.history[leaf]
        seq = next(self._seq)
        for leaf, leaf_value in new_leaves.items():
            state.history.setdefault(leaf, []).append((seq, layer, leaf_value))

    def _preset_ops(self, name: str, stack: list[str]) -> list[tuple]:
        presets = self.presets()
        if not isinstance(name, str) or name not in presets:
            known = ", ".join(sorted(presets)) or "none"
            chain = f" (extended by {stack[-1]!r})" if stack else ""
            raise ConfigError(
                f"unknown preset {name!r}{chain} in {self._where()} (available: {known})"
            )
        if name in stack:
            cycle = " -> ".join([*stack[stack.index(name) :], name])
            raise ConfigError(f"preset cycle in {self._where()}: {cycle}")
        body = presets[name]
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(
                f"preset {name!r} in {self._where()} must be a mapping of "
                f"'dotted.key: value', not {type(body).__name__}"
            )
        ops: list[tuple] = []
        marked = False
        for key, value in body.items():
            if key == "extends":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(
                        f"preset {name!r}: 'extends' must be a list of preset names, got {value!r}"
                    )
                for parent in value:
                    ops.extend(self._preset_ops(parent, [*stack, name]))
            else:
                if not marked:
                    ops.append(("mark", name))
                    marked = True
                ops.append(("set", str(key), value, name))
        if not marked:
            ops.append(("mark", name))
        return ops


# ---------------------------------------------------------------------------- loading


def parse_var(text: str, source: str = "--var") -> dict[str, Any]:
    """Parse one ``'key: value'`` override as YAML data (never as a template)."""
    data = yamlio.loads(text, f"{source} {text!r}")
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{source} {text!r}: expected 'dotted.key: value'")
    return data


def load(
    project: str | None = None,
    config_file: str | Path | None = None,
    *,
    presets: Iterable[str] = (),
    overrides: Iterable[tuple[str, Mapping[str, Any]]] = (),
    overrides_file: Path | None = None,
) -> ProjectConfig:
    """Load a project config and apply presets then overrides (each layer all-or-nothing).

    ``overrides`` is a sequence of ``(source, mapping)`` applied in order; ``overrides_file``
    (normally ``$ARTIFACT_DIR/variable_overrides.yaml``) is applied last when it exists.
    """
    if (project is None) == (config_file is None):
        raise ConfigError("give exactly one of --project NAME or --config FILE")
    path = Path(config_file) if config_file else project_testing_dir(project) / "config.yaml"
    data = yamlio.load_file(path)
    if data is None:
        data = {}
    cfg = ProjectConfig(data, path=path.absolute(), project=project or path.parent.parent.name)
    cfg.apply_presets(list(presets))
    for source, mapping in overrides:
        cfg.apply_overrides(mapping, source)
    if overrides_file is not None and overrides_file.is_file():
        file_data = yamlio.load_file(overrides_file) or {}
        if not isinstance(file_data, dict):
            raise ConfigError(f"{overrides_file}: expected a mapping of 'dotted.key: value'")
        cfg.apply_overrides(file_data, "file")
    cfg.validate()
    return cfg


def current() -> ProjectConfig:
    """The current project config; an error when none is loaded."""
    cfg = _current.get()
    if cfg is None:
        raise ConfigError(
            "no project config is loaded: use --project NAME or --config FILE "
            "(or ci/run PROJECT STEP)"
        )
    return cfg


@contextlib.contextmanager
def using(cfg: ProjectConfig) -> Iterator[ProjectConfig]:
    """Make ``cfg`` the current project config inside the block."""
    token = _current.set(cfg)
    try:
        yield cfg
    finally:
        _current.reset(token)


@contextlib.contextmanager
def frozen(reason: str) -> Iterator[None]:
    """Refuse ``set_config`` inside the block (used by ``run.Parallel`` tasks)."""
    token = _frozen.set(reason)
    try:
        yield
    finally:
        _frozen.reset(token)
