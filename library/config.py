"""Project configuration: one YAML document, presets, overrides and where every value came from.

TOPSAIL's semantics (``projects/core/library/config.py``) without its traps:

- Keys are paths: ``tests.tap.count``, list items as ``a.b[0]`` (or ``a.b.0``), keys holding
  dots quoted as ``ci_presets.light["tests.x.gpu"]``; a leading ``$.`` is accepted.
- ``ci_presets.<name>`` is a flat map ``key: value``; ``extends: [a, b]`` applies those presets
  at its position in the map (first: the preset's own keys win; last: the parents win). A preset
  may set a key of another preset (``'ci_presets.light["tests.x.gpu"]': 1``) before it applies.
  ``ci_presets.names/name/local_config/to_apply/variable_overrides`` are bookkeeping, not
  presets; ``to_apply`` and ``variable_overrides`` are applied first, as TOPSAIL does.
- Values are read through references: ``@key`` (the whole value), ``{@key}`` (inside a string),
  ``*$@key`` (the content of the file named by ``key`` in the secrets directory, whose
  environment variable ``secrets.dir.env_key`` names; only for ``handled_secretly=True``).
  Reference cycles are errors.
- Presets and overrides may only set keys that exist; a dict or list value replaces the subtree.
- Order: base file, ``to_apply`` presets, ``variable_overrides``, presets in the order named,
  then overrides (``/var`` lines, ``--var`` options, the overrides file). Later wins.
- Everything is applied to a copy and committed at the end: a failing preset changes nothing.
- Masking is by source, not by key name (see ``Secret``).

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
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from library import artifacts, redact, yamlio
from library.errors import ConfigError

PRESETS_KEY = "ci_presets"
# Entries of ci_presets that TOPSAIL uses for bookkeeping: never applicable as presets.
BOOKKEEPING = ("names", "name", "local_config", "to_apply", "variable_overrides")
# CI input (TOPSAIL's): overrides a CI system drops into $ARTIFACT_DIR; bosun never writes it.
OVERRIDES_FILE = artifacts.VARIABLE_OVERRIDES
# What a run applied (snapshot): another name, so a rerun into the dir does not replay it.
OVERRIDES_SNAPSHOT = "overrides_applied.yaml"
SECRET_DIR_KEY = "secrets.dir.env_key"
SECRET_REF = "*$@"
_MISSING = object()
_REF_IN_STRING = re.compile(r"\{@(.*?)\}")
_INDEX = re.compile(r"-?\d+")
_PLAIN_NAME = re.compile(r"[^.\[\]\"'\s]+")

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


# ---------------------------------------------------------------------------- secret values


class Secret(str):
    """A string that is never shown: ``config show``, ``--explain`` and snapshots print ``***``.

    A value is secret by where it came from, not by the name of its key:

    - marked in YAML with ``!secret`` (a config file, a preset, ``--var``, ``/var``);
    - given from outside the committed config (``--var``, ``/var``, the overrides file,
      ``set_config``) as a string for a key whose name says secret (token, password, secret,
      credential, api key, authorization, cookie, webhook), or for a key whose value was secret
      or a secret-file reference;
    - read from a secret file (``*$@key``).

    Every such value is also registered with ``redact`` so it is masked in logs and artifacts.
    Values of the committed config are not masked by name: ``max_input_tokens: 2047`` and the
    file names under ``secrets.*`` are shown.
    """

    __slots__ = ()
    is_secret = True  # a marker maskers can test without importing this module

    def __repr__(self) -> str:
        return "Secret('***')"


class _ConfigLoader(yamlio.BoundedLoader):
    """The bounded loader, plus ``!secret`` to mark a string as secret."""


def _construct_secret(loader: _ConfigLoader, node: yaml.Node) -> Secret:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!secret marks a string, not a list or mapping", node.start_mark
        )
    return Secret(loader.construct_scalar(node))


_ConfigLoader.add_constructor("!secret", _construct_secret)


def _is_secret_name(name: Any) -> bool:
    return isinstance(name, str) and (redact.is_secret_name(name) or "webhook" in name.lower())


def _register_secrets(node: Any) -> None:
    if isinstance(node, Secret):
        redact.register_secret(str(node))
    elif isinstance(node, dict):
        for value in node.values():
            _register_secrets(value)
    elif isinstance(node, list):
        for value in node:
            _register_secrets(value)


def mask(data: Any) -> Any:
    """A copy of config data fit to show: secret values as ``***``, registered secrets masked."""
    if isinstance(data, Secret):
        return redact.MASK
    if isinstance(data, dict):
        return {k: mask(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask(v) for v in data]
    if isinstance(data, str):
        return redact.redact_text(data)
    return data


# ---------------------------------------------------------------------------- keys


def _invalid_key(key: Any) -> ConfigError:
    return ConfigError(
        f"invalid config key {key!r}: expected a path like 'tests.tap.count', 'a.b[0]' "
        "or 'ci_presets.light[\"tests.x.gpu\"]'"
    )


def parse_key(key: Any) -> list[str | int]:
    """Split a key into parts: names (str) and list indexes (int, from ``[N]``).

    Accepts TOPSAIL's JSONPath subset: ``a.b``, ``a.b[0]``, ``a["x.y"]``, ``a['x.y']``, a
    leading ``$`` or ``$.``, and bosun's ``a.b.0``.
    """
    if not isinstance(key, str) or not key.strip():
        raise _invalid_key(key)
    text = key
    if text.startswith("$"):
        text = text[1:].removeprefix(".")
    parts: list[str | int] = []
    i, n = 0, len(text)
    need_name = True  # at the start or after a dot, a name must come
    while i < n:
        char = text[i]
        if char == "[":
            if need_name and parts:
                raise _invalid_key(key)  # 'a.[0]'
            if i + 1 < n and text[i + 1] in "\"'":
                quote = text[i + 1]
                end = text.find(quote, i + 2)
                if end < 0 or text[end + 1 : end + 2] != "]":
                    raise _invalid_key(key)
                parts.append(text[i + 2 : end])
                i = end + 2
            else:
                end = text.find("]", i)
                inner = text[i + 1 : end].strip() if end > 0 else ""
                if not _INDEX.fullmatch(inner):
                    raise _invalid_key(key)
                parts.append(int(inner))
                i = end + 1
            need_name = False
        elif char == ".":
            if need_name or i + 1 >= n:
                raise _invalid_key(key)
            need_name = True
            i += 1
        else:
            if not need_name:
                raise _invalid_key(key)  # 'a[0]b'
            match = re.compile(r"[^.\[]+").match(text, i)
            assert match is not None
            name = match.group(0)
            if "]" in name or name.strip() != name:
                raise _invalid_key(key)
            parts.append(name)
            i = match.end()
            need_name = False
    if need_name:
        raise _invalid_key(key)
    return parts


def format_key(parts: Iterable[Any]) -> str:
    """The canonical spelling of a key: dotted names, ``.N`` for list items, quoted odd names."""
    out = ""
    for part in parts:
        text = str(part)
        if isinstance(part, int) or _PLAIN_NAME.fullmatch(text):
            out = f"{out}.{text}" if out else text
        else:
            quote = "'" if '"' in text else '"'
            out = f"{out}[{quote}{text}{quote}]"
    return out


def canonical_key(key: str) -> str:
    return format_key(parse_key(key))


def _container_key(node: Any, part: str | int) -> Any:
    """The key or index of ``node`` that ``part`` names, or _MISSING."""
    if isinstance(node, dict):
        if part in node:
            return part
        # YAML reads `1: x` as an int key; `tests.1` names it.
        if isinstance(part, str) and _INDEX.fullmatch(part) and int(part) in node:
            return int(part)
        return _MISSING
    if isinstance(node, list):
        if isinstance(part, str):
            if not _INDEX.fullmatch(part):
                return _MISSING
            part = int(part)
        if -len(node) <= part < len(node):
            return part
    return _MISSING


def _lookup_parts(data: Any, parts: list[str | int]) -> Any:
    node = data
    for part in parts:
        where = _container_key(node, part)
        if where is _MISSING:
            return _MISSING
        node = node[where]
    return node


def _lookup(data: Any, key: str) -> Any:
    return _lookup_parts(data, parse_key(key))


def _children(node: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(node, dict):
        return node.items()
    if isinstance(node, list):
        return enumerate(node)
    return ()


def _all_paths(node: Any, prefix: tuple = ()) -> Iterator[str]:
    for k, v in _children(node):
        path = (*prefix, k)
        yield format_key(path)
        yield from _all_paths(v, path)


def _leaves(node: Any, prefix: tuple) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict | list) and node:
        for k, v in _children(node):
            yield from _leaves(v, (*prefix, k))
    else:
        yield format_key(prefix), node


def _under(leaf: str, key: str) -> bool:
    return leaf == key or leaf.startswith((key + ".", key + "["))


def nearest_key(data: Any, key: str) -> str | None:
    """The existing key most like ``key`` (for 'did you mean' errors); never ``key`` itself."""
    paths = [p for p in _all_paths(data) if not p.startswith(PRESETS_KEY)]
    with contextlib.suppress(ConfigError):
        key = canonical_key(key)
    close = [p for p in difflib.get_close_matches(key, paths, n=2, cutoff=0.5) if p != key]
    if close:
        return close[0]
    # Fall back to the deepest existing prefix: it tells where the typo starts.
    try:
        parts = parse_key(key)
    except ConfigError:
        return None
    for i in range(len(parts) - 1, 0, -1):
        if _lookup_parts(data, parts[:i]) is not _MISSING:
            return format_key(parts[:i])
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
        _register_secrets(self._state.data)
        for key, subtree in self._state.data.items():
            if key != PRESETS_KEY:
                for leaf, value in _leaves(subtree, (key,)):
                    self._state.history[leaf] = [(next(self._seq), "base", value)]

    # -- reading

    def get_config(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        print: bool = False,  # noqa: A002 - TOPSAIL's keyword, accepted so its code runs
        warn: bool = True,
        handled_secretly: bool = False,
    ) -> Any:
        """The value at ``key`` (a copy), references resolved. A missing key without a default
        is an error. A secret-file reference (``*$@key``) is read only with
        ``handled_secretly=True``; the value comes back as a ``Secret``."""
        value = _lookup(self._state.data, key)
        if value is _MISSING:
            if default is not _MISSING:
                return default
            raise ConfigError(self._unknown_key_message(key, "config"))
        resolved = self._resolve(value, [canonical_key(key)], handled_secretly, None)
        return copy.deepcopy(resolved)

    def effective(self) -> dict:
        """A deep copy of the whole effective config, references as written."""
        return copy.deepcopy(self._state.data)

    def resolved(self) -> dict:
        """The effective config with ``@key`` and ``{@key}`` references resolved.

        Secret-file references (``*$@key``) stay as written: reading secrets is for code that
        asks for one value with ``handled_secretly=True``. Presets are left as written.
        """
        data = self.effective()
        for key, value in data.items():
            if key != PRESETS_KEY:
                data[key] = self._resolve(value, [format_key([key])], False, None)
        return data

    @property
    def presets_applied(self) -> list[str]:
        return list(self._state.presets_applied)

    @property
    def overrides(self) -> dict[str, Any]:
        return copy.deepcopy(self._state.overrides)

    def provenance(self) -> dict[str, str]:
        """For every leaf, the layer that set it last (and the secret file it reads, if any)."""
        out = {}
        for leaf, entries in sorted(self._state.history.items()):
            layer = entries[-1][1]
            value = _lookup(self._state.data, leaf)
            if isinstance(value, str) and value.startswith(SECRET_REF):
                layer += f" (secret file {self._describe_secret_file(value, [leaf])})"
            out[leaf] = layer
        return out

    def explain(self, key: str) -> list[tuple[str, str, Any]]:
        """The layers that set ``key`` (or leaves under it), in order: (layer, leaf, value)."""
        if _lookup(self._state.data, key) is _MISSING:
            raise ConfigError(self._unknown_key_message(key, "--explain"))
        canon = canonical_key(key)
        rows: list[tuple[int, str, str, Any]] = []
        for leaf, entries in self._state.history.items():
            if _under(leaf, canon):
                rows.extend((seq, layer, leaf, value) for seq, layer, value in entries)
        return [(layer, leaf, value) for _, layer, leaf, value in sorted(rows, key=lambda r: r[0])]

    def reference_chain(self, key: str) -> list[dict[str, Any]]:
        """The references reading ``key`` follows, in order, without reading any secret file.

        Each step is ``{"reference": text, "key": key, "value": raw value}``; a secret file is
        ``{"reference": text, "secret_file": "$ENV/name"}``.
        """
        value = _lookup(self._state.data, key)
        if value is _MISSING:
            raise ConfigError(self._unknown_key_message(key, "--explain"))
        trace: list[dict[str, Any]] = []
        self._resolve(value, [canonical_key(key)], True, trace)
        return trace

    def presets(self) -> dict[str, Any]:
        """The presets of the config (bookkeeping entries excluded)."""
        return {k: v for k, v in self._presets_of(self._state).items() if k not in BOOKKEEPING}

    # -- writing

    def set_config(
        self,
        key: str,
        value: Any,
        *,
        source: str = "set_config",
        print: bool = False,  # noqa: A002 - TOPSAIL's keyword, accepted so its code runs
    ) -> None:
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
                self._apply_preset(state, name, [])

    def apply_config_presets(self) -> None:
        """Apply ``ci_presets.to_apply`` then ``ci_presets.variable_overrides`` (TOPSAIL's init)."""
        presets = self._presets_of(self._state)
        to_apply = presets.get("to_apply") or []
        if isinstance(to_apply, str):
            to_apply = [to_apply]
        if not isinstance(to_apply, list) or not all(isinstance(n, str) for n in to_apply):
            raise ConfigError(
                f"{self._where()}: '{PRESETS_KEY}.to_apply' must be a preset name or a list of "
                f"names, not {to_apply!r}"
            )
        self.apply_presets(to_apply)
        variables = presets.get("variable_overrides") or {}
        if not isinstance(variables, dict):
            raise ConfigError(
                f"{self._where()}: '{PRESETS_KEY}.variable_overrides' must be a mapping of "
                f"'key: value', not {type(variables).__name__}"
            )
        self.apply_overrides(variables, "config")

    def apply_overrides(self, overrides: Mapping[str, Any], source: str) -> None:
        """Apply ``key: value`` overrides from one source (cli, trigger, file, config)."""
        with self._transaction() as state:
            for key, value in overrides.items():
                self._assign(
                    state, str(key), value, f"var:{source}", context=f"override ({source})"
                )
                if source != "config":  # the config's own overrides are in the config already
                    state.overrides[str(key)] = copy.deepcopy(_lookup(state.data, str(key)))

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
            schema = json.loads(yamlio.read_text(schema_path, "JSON schema"))
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{schema_path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}"
            ) from None
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(self._state.data), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = format_key(first.path) or "(top level)"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ConfigError(f"{schema_path.name}: config key {where}: {first.message}{more}")

    # -- snapshot

    def write_snapshot(self, directory: Path) -> None:
        """Write config.yaml (masked), config_provenance.yaml, presets_applied, overrides."""
        directory.mkdir(parents=True, exist_ok=True)
        yamlio.dump_file(mask(self._state.data), directory / artifacts.CONFIG)
        yamlio.dump_file(self.provenance(), directory / artifacts.CONFIG_PROVENANCE)
        (directory / artifacts.PRESETS_APPLIED).write_text(
            "".join(f"{name}\n" for name in self._state.presets_applied)
        )
        yamlio.dump_file(mask(self._state.overrides), directory / OVERRIDES_SNAPSHOT)

    # -- internals: references

    def _resolve(
        self, value: Any, chain: list[str], secretly: bool, trace: list[dict] | None
    ) -> Any:
        """``value`` with its references resolved; ``chain`` holds the keys being read."""
        if isinstance(value, dict | list):
            base = parse_key(chain[-1])
            items = [
                (k, self._resolve_nested(v, [*chain, format_key([*base, k])], trace))
                for k, v in _children(value)
            ]
            return dict(items) if isinstance(value, dict) else [v for _, v in items]
        if not isinstance(value, str) or "@" not in value:
            return value
        if value.startswith(SECRET_REF):
            if trace is not None:
                trace.append(
                    {"reference": value, "secret_file": self._describe_secret_file(value, chain)}
                )
                return value
            if not secretly:
                raise ConfigError(
                    f"{chain[-1]}: {value!r} reads a secret file: read it with "
                    f"get_config({chain[-1]!r}, handled_secretly=True)"
                )
            return self._read_secret_file(value, chain)
        if value.startswith("*@"):
            raise ConfigError(
                f"{chain[-1]}: {value!r}: '*@' references are not supported (TOPSAIL refuses "
                f"them too); use '{SECRET_REF}key' for a secret file"
            )
        if value.startswith("@"):
            return self._deref(value[1:], value, chain, secretly, trace)
        if "{@" not in value:
            return value
        found_secret = False

        def replace(match: re.Match) -> str:
            nonlocal found_secret
            ref = self._deref(match.group(1), match.group(0), chain, secretly, trace)
            found_secret = found_secret or isinstance(ref, Secret)
            return str(ref)

        text = _REF_IN_STRING.sub(replace, value)
        return Secret(text) if found_secret else text

    def _resolve_nested(self, value: Any, chain: list[str], trace: list[dict] | None) -> Any:
        # Inside a subtree, secret-file references stay as written (never read in bulk).
        if isinstance(value, str) and value.startswith(SECRET_REF) and trace is None:
            return value
        return self._resolve(value, chain, False, trace)

    def _deref(
        self, ref: str, text: str, chain: list[str], secretly: bool, trace: list[dict] | None
    ) -> Any:
        try:
            target = canonical_key(ref.strip())
        except ConfigError:
            raise ConfigError(
                f"{chain[-1]}: reference {text!r} does not name a key in {self._where()}"
            ) from None
        if target in chain:
            cycle = " -> ".join([*chain[chain.index(target) :], target])
            raise ConfigError(f"reference cycle in {self._where()}: {cycle}")
        raw = _lookup(self._state.data, target)
        if raw is _MISSING:
            raise ConfigError(self._unknown_key_message(target, f"{chain[-1]}: reference {text!r}"))
        if trace is not None:
            trace.append({"reference": text, "key": target, "value": raw})
        return self._resolve(raw, [*chain, target], secretly, trace)

    def _secret_file_parts(self, value: str, chain: list[str]) -> tuple[str, str]:
        """(environment variable, file name) of a ``*$@key`` reference."""
        name = self._deref(value[len(SECRET_REF) :], value, chain, False, None)
        env_key = _lookup(self._state.data, SECRET_DIR_KEY)
        if not isinstance(env_key, str) or not env_key:
            raise ConfigError(
                f"{chain[0]}: {value!r} reads a secret file, but '{SECRET_DIR_KEY}' (the "
                f"environment variable naming the secrets directory) is not set in {self._where()}"
            )
        if (
            not isinstance(name, str)
            or not name
            or name.startswith("/")
            or ".." in Path(name).parts
        ):
            raise ConfigError(
                f"{chain[0]}: {value!r} must name a file inside the secrets directory, not {name!r}"
            )
        return env_key, name

    def _describe_secret_file(self, value: str, chain: list[str]) -> str:
        try:
            env_key, name = self._secret_file_parts(value, chain)
        except ConfigError:
            return f"named by {value[len(SECRET_REF) :]}"
        return f"${env_key}/{name}"

    def _read_secret_file(self, value: str, chain: list[str]) -> Secret:
        env_key, name = self._secret_file_parts(value, chain)
        directory = os.environ.get(env_key)
        if not directory:
            raise ConfigError(
                f"{chain[0]}: {value!r} reads the secret file {name!r} from ${env_key}, which "
                "is not set: export it with the path of the secrets directory"
            )
        secret = Secret(yamlio.read_text(Path(directory) / name, "secret file").strip())
        redact.register_secret(str(secret))
        return secret

    # -- internals: layers

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

    def _presets_of(self, state: _State) -> dict[str, Any]:
        presets = state.data.get(PRESETS_KEY) or {}
        if not isinstance(presets, dict):
            raise ConfigError(f"{self._where()}: '{PRESETS_KEY}' must be a mapping of preset names")
        return presets

    def _mark_secrets(self, state: _State, parts: list, value: Any, layer: str) -> Any:
        """Values from outside the committed config become Secret by key name or by slot."""
        if layer in ("base", "var:config") or layer.startswith("preset:"):
            return value

        def mark(node: Any, path: list) -> Any:
            if isinstance(node, dict):
                return {k: mark(v, [*path, k]) for k, v in node.items()}
            if isinstance(node, list):
                return [mark(v, [*path, i]) for i, v in enumerate(node)]
            if isinstance(node, str) and not isinstance(node, Secret):
                names = [p for p in path if isinstance(p, str)]
                previous = _lookup_parts(state.data, path)
                slot = isinstance(previous, Secret) or (
                    isinstance(previous, str) and previous.startswith(SECRET_REF)
                )
                if slot or (names and _is_secret_name(names[-1])):
                    return Secret(node)
            return node

        marked = mark(value, list(parts))
        _register_secrets(marked)
        return marked

    def _assign(self, state: _State, key: str, value: Any, layer: str, context: str) -> None:
        parts = parse_key(key)
        if parts[0] == PRESETS_KEY:
            self._assign_in_preset(state, key, parts, value, context)
            return
        parent = _lookup_parts(state.data, parts[:-1])
        where = _container_key(parent, parts[-1])
        if parent is _MISSING or where is _MISSING:
            raise ConfigError(
                self._unknown_key_message(key, context, state.data)
                + "; a preset or override can only set keys the config already has"
            )
        canon = format_key(parts)
        value = self._mark_secrets(state, parts, copy.deepcopy(value), layer)
        parent[where] = value
        new_leaves = dict(_leaves(value, tuple(parts)))
        # A replaced subtree drops the history of the leaves it no longer has.
        for leaf in [leaf for leaf in state.history if _under(leaf, canon)]:
            if leaf not in new_leaves:
                del state.history[leaf]
        seq = next(self._seq)
        for leaf, leaf_value in new_leaves.items():
            state.history.setdefault(leaf, []).append((seq, layer, leaf_value))

    def _assign_in_preset(
        self, state: _State, key: str, parts: list, value: Any, context: str
    ) -> None:
        """A preset may set a key of another preset (TOPSAIL: 'ci_presets.light["k"]': v)."""
        presets = self._presets_of(state)
        if len(parts) < 3 or parts[1] in BOOKKEEPING:
            raise ConfigError(
                f"{context}: cannot set '{key}': presets are not settable as a whole, and "
                f"'{PRESETS_KEY}' bookkeeping entries are read from the config file only; "
                f'set one key of a preset as {PRESETS_KEY}.NAME["dotted.key"]'
            )
        body = presets.get(parts[1]) if isinstance(parts[1], str) else None
        if not isinstance(body, dict):
            known = ", ".join(sorted(self.presets())) or "none"
            raise ConfigError(
                f"{context}: cannot set '{key}': no preset {parts[1]!r} (available: {known})"
            )
        if context.startswith("override") and parts[1] in state.presets_applied:
            # Overrides come after presets: editing an applied preset would change nothing.
            raise ConfigError(
                f"{context}: cannot set '{key}': preset {parts[1]!r} was already applied "
                "(presets apply before overrides), so this would change nothing; set the "
                "config key itself instead"
            )
        rest = parts[2:]
        if isinstance(rest[0], str) and rest[0] not in body and ".".join(map(str, rest)) in body:
            rest = [".".join(map(str, rest))]  # ci_presets.light.tests.x.gpu, unquoted
        parent = _lookup_parts(body, rest[:-1])
        where = _container_key(parent, rest[-1])
        if parent is _MISSING or where is _MISSING:
            raise ConfigError(
                f"{context}: cannot set '{key}': preset {parts[1]!r} has no key "
                f"{rest[0] if len(rest) == 1 else format_key(rest)!r}; a preset can only change "
                "keys another preset already sets"
            )
        parent[where] = copy.deepcopy(value)

    def _apply_preset(self, state: _State, name: Any, stack: list[str]) -> None:
        presets = self._presets_of(state)
        usable = sorted(k for k in presets if k not in BOOKKEEPING)
        chain = f" (extended by {stack[-1]!r})" if stack else ""
        if name in BOOKKEEPING and isinstance(name, str):
            raise ConfigError(
                f"'{name}' is a bookkeeping entry of {PRESETS_KEY} in {self._where()}, not a "
                f"preset{chain} (available: {', '.join(usable) or 'none'})"
            )
        if not isinstance(name, str) or name not in presets:
            raise ConfigError(
                f"unknown preset {name!r}{chain} in {self._where()} "
                f"(available: {', '.join(usable) or 'none'})"
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
        # TOPSAIL keeps the names applied in ci_presets.names when the config has that entry.
        names = presets.get("names") or []
        if "names" in presets and isinstance(names, list) and name not in names:
            presets["names"] = [*names, name]
        marked = False
        for key, value in list(copy.deepcopy(body).items()):
            if key == "extends":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(
                        f"preset {name!r}: 'extends' must be a list of preset names, got {value!r}"
                    )
                for parent in value:
                    self._apply_preset(state, parent, [*stack, name])
                continue
            if not marked:
                state.presets_applied.append(name)
                marked = True
            self._assign(state, str(key), value, f"preset:{name}", context=f"preset {name!r}")
        if not marked:
            state.presets_applied.append(name)


# ---------------------------------------------------------------------------- loading


def parse_var(text: str, source: str = "--var") -> dict[str, Any]:
    """Parse one ``'key: value'`` override as YAML data (never as a template)."""
    data = yamlio.loads(text, f"{source} {text!r}", loader=_ConfigLoader)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{source} {text!r}: expected 'dotted.key: value'")
    return data


def load_file(path: Path) -> Any:
    """Read a config or overrides file with the bounded loader (``!secret`` accepted)."""
    return yamlio.loads(yamlio.read_text(path, "YAML file"), str(path), loader=_ConfigLoader)


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
    if config_file:
        path = Path(config_file)
    else:
        assert project is not None  # exactly one of the two, checked just above
        path = project_testing_dir(project) / "config.yaml"
    data = load_file(path)
    if data is None:
        data = {}
    cfg = ProjectConfig(data, path=path.absolute(), project=project or path.parent.parent.name)
    cfg.apply_config_presets()
    cfg.apply_presets(list(presets))
    for source, mapping in overrides:
        cfg.apply_overrides(mapping, source)
    if overrides_file is not None and overrides_file.is_file():
        file_data = load_file(overrides_file) or {}
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
