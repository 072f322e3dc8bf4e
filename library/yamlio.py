"""YAML in and out: the one loader every YAML bosun reads goes through.

Config files, ``--var`` values, ``/var`` lines, flock files and query-set parameters all come
from outside the code, so the loader is bounded and strict, and every refusal is one line
naming the file:

- nesting deeper than ``MAX_DEPTH`` is refused while composing (no RecursionError);
- a document whose nodes, aliases expanded, exceed ``MAX_NODES`` is refused before any object
  is built (alias bombs: a few hundred bytes that would expand to gigabytes);
- duplicate keys in one mapping are refused with both lines; keys brought in by a merge key
  (``<<: *base``) may be overridden locally, as YAML intends;
- only JSON-like data is built: dates stay strings (``2024-01-01``), and the tags that build
  other types (``!!binary``, ``!!timestamp``, ``!!set``, ``!!omap``, ``!!pairs``) are refused,
  so a value read here can always be written to ``run.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from library.errors import UserError

MAX_DEPTH = 200  # real configs nest ~10 deep; Python's recursion limit is ~1000 frames
MAX_NODES = 1_000_000  # a 755-line TOPSAIL config has ~3,000 nodes

_REFUSED_TAGS = ("binary", "timestamp", "set", "omap", "pairs")


class _Refused(yaml.YAMLError):
    """A document refused by the bounds (no mark: it concerns the whole document)."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader with bounded depth and expansion, strict duplicate keys, JSON-like types."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


# Dates stay strings: drop the implicit timestamp resolver from this loader's copy of the table.
BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith(":timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _check_expansion(root: yaml.Node) -> None:
    """Count the nodes of the document as if every alias were copied; refuse past MAX_NODES."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    # Iterative post-order walk: an alias is the same node object as its anchor, so a memo per
    # node id counts each anchored subtree once but charges every reference its full size.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            in_progress.discard(key)
            if sizes[key] > MAX_NODES:
                raise _Refused(
                    f"expands to more than {MAX_NODES:,} nodes once aliases are expanded "
                    "(an alias bomb?)"
                )
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise _Refused("an alias refers to a node that contains it (recursive alias)")
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _construct_mapping(loader: BoundedLoader, node: yaml.MappingNode, deep: bool = False):
    # Duplicates are checked among the mapping's own keys only: keys brought in by a merge key
    # are defaults that a local key may override.
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark,
                )
        except TypeError:
            continue  # unhashable keys are reported by the base constructor
        seen[key] = key_node
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


def _refuse_tag(loader: BoundedLoader, node: yaml.Node):
    tag = node.tag.rsplit(":", 1)[-1]
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"the tag !!{tag} is not accepted (values are strings, numbers, booleans, null, "
        "lists and mappings)",
        node.start_mark,
    )


BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
for _tag in _REFUSED_TAGS:
    BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def _describe(err: yaml.YAMLError, source: str) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{source}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"
    return f"{source}: invalid YAML: {problem}"


def loads(
    text: str, source: str = "<string>", *, loader: type[BoundedLoader] = BoundedLoader
) -> Any:
    """Parse YAML text; any refusal raises UserError naming source[:line:col]."""
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - BoundedLoader is a SafeLoader
    except yaml.YAMLError as err:
        raise UserError(_describe(err, source)) from None
    except RecursionError:  # belt and braces: MAX_DEPTH should refuse first
        raise UserError(f"{source}: invalid YAML: nested too deeply") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """Read a UTF-8 text file bosun was given; one-line errors naming the file."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a {what}") from None
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path}: not a UTF-8 text file (byte {err.object[err.start]:#04x} at offset "
            f"{err.start}): save it as UTF-8"
        ) from None
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror}") from None


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file, with one-line errors for a missing or invalid file."""
    return loads(read_text(path, "YAML file"), str(path))


class _Dumper(yaml.SafeDumper):
    """Block-style dumper that keeps multi-line strings readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)
# str subclasses (config.Secret) are written as strings; masking is the caller's job.
_Dumper.add_multi_representer(str, _str_representer)


def dumps(data: Any) -> str:
    """Serialise data as block-style YAML, keys in insertion order."""
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def dump_file(data: Any, path: str | Path) -> None:
    Path(path).write_text(dumps(data), encoding="utf-8")
