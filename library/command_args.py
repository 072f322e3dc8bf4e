"""``command_args.yaml.j2``: toolbox arguments rendered from the project config.

Keys are ``[prefix/]group command[/suffix]``; values are the command's arguments. The template
is rendered with ``StrictUndefined`` against the effective config, so a missing config value is
an error naming the template line. Keys starting with ``_`` are metadata, not arguments. A value
left as ``SET_AT_RUNTIME`` must come from the caller's ``extra``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from library import yamlio
from library.errors import ConfigError

SET_AT_RUNTIME = "SET_AT_RUNTIME"
TEMPLATE_NAME = "command_args.yaml.j2"


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

    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (the project has no command arguments template)"
        ) from None
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )  # noqa: S701 - renders YAML, not HTML
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
    rendered = yamlio.loads(text, f"{path} (rendered)") or {}
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
