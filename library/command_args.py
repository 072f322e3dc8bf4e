"""``command_args.yaml.j2``: toolbox arguments rendered from the project config.

Keys are ``[prefix/]group command[/suffix]``; values are the command's arguments. The template
is rendered with ``StrictUndefined`` against the effective config, so a missing config value is
an error naming the template line. Keys starting with ``_`` are metadata, not arguments. A value
left as ``SET_AT_RUNTIME`` must come from the caller's ``extra``.

TOPSAIL's file name ``command_args.yml.j2`` is accepted too, with its template filters
``or_env``, ``raise_exception`` and ``log_warning``.

A value rendered by ``{{ ... }}`` stays one value whatever characters it holds: each
expression renders to a random placeholder, the YAML is parsed, and only then are the
placeholders replaced by the values. A whole plain scalar becomes the value itself (typed as
YAML would type its text when it is a string); a placeholder inside a longer or quoted string
is replaced by its text. A newline or a quote in a value can never add a key or an argument.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any

import markupsafe
import yaml

from library import yamlio
from library.config import Secret
from library.errors import ConfigError

SET_AT_RUNTIME = "SET_AT_RUNTIME"
TEMPLATE_NAME = "command_args.yaml.j2"
TEMPLATE_NAMES = (TEMPLATE_NAME, "command_args.yml.j2")  # bosun's, then TOPSAIL's


def template_path(testing_dir: Path) -> Path:
    """The project's template: ``command_args.yaml.j2`` or TOPSAIL's ``command_args.yml.j2``."""
    found = [testing_dir / name for name in TEMPLATE_NAMES if (testing_dir / name).is_file()]
    if len(found) > 1:
        raise ConfigError(
            f"{testing_dir}: both {TEMPLATE_NAMES[0]} and {TEMPLATE_NAMES[1]} exist: keep one"
        )
    return found[0] if found else testing_dir / TEMPLATE_NAME


def _filters(path: Path) -> dict[str, Any]:
    def or_env(value: Any, attribute: str | None = None) -> Any:
        """TOPSAIL: the value when truthy, else the environment variable named ``attribute``."""
        if value:
            return value
        if not attribute:
            raise ConfigError(f"{path}: or_env needs the name of an environment variable")
        return os.environ.get(attribute)

    def raise_exception(message: Any) -> None:
        raise ConfigError(f"{path}: {message}")

    def log_warning(message: Any) -> str:
        logging.getLogger("toolbox").warning("%s: %s", path.name, message)
        return ""

    return {"or_env": or_env, "raise_exception": raise_exception, "log_warning": log_warning}


def _typed(loader: yaml.SafeLoader, text: str) -> Any:
    """A plain scalar's text typed as YAML types it (int, bool, null...) - one scalar at most."""
    tag = loader.resolve(yaml.ScalarNode, text, (True, False))
    if tag == "tag:yaml.org,2002:str":
        return text
    return loader.construct_object(yaml.ScalarNode(tag, text))


def _placeholder_loader(values: list[Any], pattern: re.Pattern[str]) -> type[yamlio.BoundedLoader]:
    class Loader(yamlio.BoundedLoader):
        pass

    def construct_str(loader: yamlio.BoundedLoader, node: yaml.ScalarNode) -> Any:
        text = loader.construct_scalar(node)
        if not pattern.search(text):
            return text
        whole = pattern.fullmatch(text)
        if whole and node.style is None:
            value = values[int(whole.group(1))]
            if isinstance(value, markupsafe.Markup):
                # Output of `tojson` (or `safe`): text meant to be read as YAML, as TOPSAIL
                # reads it. JSON is parsed whole, so it still stays one value.
                try:
                    return json.loads(value)
                except ValueError:
                    return _typed(loader, str(value))
            if isinstance(value, str) and type(value) is str:
                return _typed(loader, value)
            return copy.deepcopy(value)
        parts = [values[int(m.group(1))] for m in pattern.finditer(text)]
        text = pattern.sub(lambda m: _as_text(values[int(m.group(1))]), text)
        value = _typed(loader, text) if node.style is None else text
        if isinstance(value, str) and any(isinstance(p, Secret) for p in parts):
            return Secret(value)  # a string holding a secret is secret as a whole
        return value

    Loader.add_constructor("tag:yaml.org,2002:str", construct_str)
    return Loader


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


def _template_line(err: BaseException, path: Path) -> int | None:
    tb = err.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(path: Path, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Render the template against ``data`` and parse it into ``{key: {arg: value}}``."""
    import jinja2

    if not path.is_file():
        raise ConfigError(f"{path}: no such file (the project has no command arguments template)")
    source = yamlio.read_text(path, "template")
    values: list[Any] = []
    nonce = secrets.token_hex(6)
    pattern = re.compile(rf"bosunvalue{nonce}_(\d+)_")

    def placeholder(value: Any) -> str:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises here, inside the template's frame
        if isinstance(value, str) and value == "":
            return ""  # nothing to inject; renders as TOPSAIL renders it (a blank)
        values.append(value)
        return f"bosunvalue{nonce}_{len(values) - 1}_"

    env = jinja2.Environment(  # noqa: S701 - renders YAML, not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        finalize=placeholder,
    )
    env.filters.update(_filters(path))
    try:
        template = env.from_string(source)
        template.filename = str(path)
        text = template.render(**data)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{path}:{err.lineno}: template syntax error: {err.message}") from None
    except jinja2.UndefinedError as err:
        line = _template_line(err, path)
        snippet = ""
        if line is not None:
            snippet = f" in `{source.splitlines()[line - 1].strip()}`"
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: missing config value{snippet}: {err.message}") from None
    loader = _placeholder_loader(values, pattern)
    rendered = yamlio.loads(text, f"{path} (rendered)", loader=loader) or {}
    if not isinstance(rendered, dict):
        raise ConfigError(f"{path}: must render to a mapping of 'group command: {{args}}'")
    for key, args in rendered.items():
        if args is not None and not isinstance(args, dict):
            raise ConfigError(f"{path}: '{key}' must map to argument: value pairs")
    return rendered


def entry_key(
    group: str, command: str, prefix: str | None = None, suffix: str | None = None
) -> str:
    key = f"{group} {command}"
    if prefix:
        key = f"{prefix}/{key}"
    if suffix:
        key = f"{key}/{suffix}"
    return key


def resolve(
    path: Path,
    data: dict[str, Any],
    group: str,
    command: str,
    *,
    prefix: str | None = None,
    suffix: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments for one command: template entry, then ``extra`` on top."""
    entries = render(path, data)
    key = entry_key(group, command, prefix, suffix)
    if key not in entries:
        known = ", ".join(repr(k) for k in entries) or "none"
        raise ConfigError(f"{path}: no entry {key!r} (available: {known})")
    args = {k: v for k, v in (entries[key] or {}).items() if not str(k).startswith("_")}
    args.update(extra or {})
    missing = [k for k, v in args.items() if v == SET_AT_RUNTIME]
    if missing:
        raise ConfigError(
            f"{path}: {key!r} argument '{missing[0]}' is {SET_AT_RUNTIME}: "
            "the caller must supply it (extra={...} or --extra)"
        )
    return args
