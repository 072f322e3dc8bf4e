"""YAML in and out: safe loading that refuses duplicate keys and names file:line:column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from library.errors import UserError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                    mark,
                )
        except TypeError:
            continue  # unhashable keys are reported by the base constructor
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _describe(err: yaml.YAMLError, source: str) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{source}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"
    return f"{source}: invalid YAML: {problem}"


def loads(text: str, source: str = "<string>") -> Any:
    """Parse YAML text; a syntax error or duplicate key raises UserError naming source:line:col."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except yaml.YAMLError as err:
        raise UserError(_describe(err, source)) from None


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file, with one-line errors for a missing or invalid file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None
    return loads(text, str(path))


class _Dumper(yaml.SafeDumper):
    """Block-style dumper that keeps multi-line strings readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dumps(data: Any) -> str:
    """Serialise data as block-style YAML, keys in insertion order."""
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def dump_file(data: Any, path: str | Path) -> None:
    Path(path).write_text(dumps(data), encoding="utf-8")
