"""The toolbox: discovering command groups and running a command inside its artifact dir.

A group is a module ``toolbox/<group>.py``; a command is a typed function in it marked with
``@command``. Running a command (from the CLI or from Python) happens in-process, inside a new
``NNN__group__command[__suffix]`` directory holding ``args.yaml``, ``command.sh``, ``log.txt``,
``exit_code``, ``result.json`` and, on error, ``FAILURE``.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import datetime as dt
import importlib
import inspect
import json
import logging
import shlex
import sys
import threading
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from library import artifacts, env, redact, yamlio
from library.errors import UserError, one_line

TOOLBOX_DIR = Path(__file__).resolve().parent.parent / "toolbox"
_ATTR = "__bosun_command__"


@dataclass(frozen=True)
class CommandOptions:
    """How a command is exposed: recorded in an artifact dir or not, and extra CLI names."""

    record: bool = True
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)


def command(
    fn: Callable | None = None,
    *,
    record: bool = True,
    aliases: dict[str, str | list[str]] | None = None,
):
    """Mark a function as a toolbox command (``@command`` or ``@command(record=False)``).

    ``aliases`` adds CLI names to an option, e.g. ``{"parameters": "-p"}`` or
    ``{"use_async": "--async"}`` for a name Python cannot use.
    """
    normalised = {k: tuple([v] if isinstance(v, str) else v) for k, v in (aliases or {}).items()}

    def mark(func: Callable) -> Callable:
        setattr(func, _ATTR, CommandOptions(record=record, aliases=normalised))
        return func

    return mark(fn) if fn is not None else mark


# ---------------------------------------------------------------------------- discovery


def group_names() -> list[str]:
    return sorted(p.stem for p in TOOLBOX_DIR.glob("*.py") if not p.stem.startswith("_"))


def group_summary(group: str) -> str:
    """First docstring line of a group module, read without importing it (keeps --help fast)."""
    tree = ast.parse((TOOLBOX_DIR / f"{group}.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def load_group(group: str) -> dict[str, Callable]:
    """The commands of a group, in definition order; an unknown group lists the known ones."""
    if group not in group_names():
        raise UserError(f"unknown toolbox group {group!r} (available: {', '.join(group_names())})")
    module = importlib.import_module(f"toolbox.{group}")
    return {
        name: fn
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and hasattr(fn, _ATTR) and fn.__module__ == module.__name__
    }


def get_command(group: str, name: str) -> Callable:
    commands = load_group(group)
    if name not in commands:
        raise UserError(
            f"unknown command {name!r} in toolbox group {group!r} "
            f"(available: {', '.join(commands) or 'none'})"
        )
    return commands[name]


def options_of(fn: Callable) -> CommandOptions:
    return getattr(fn, _ATTR)


# ---------------------------------------------------------------------------- docstrings


@dataclass
class Doc:
    summary: str
    description: str
    args: dict[str, str]


def parse_docstring(fn: Callable) -> Doc:
    """Google-style docstring: summary, description, ``Args:`` section."""
    text = inspect.getdoc(fn) or ""
    lines = text.splitlines()
    summary = lines[0].strip() if lines else ""
    body: list[str] = []
    args: dict[str, str] = {}
    current: str | None = None
    section = None
    for line in lines[1:]:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            section = "args"
            continue
        if stripped in ("Returns:", "Raises:", "Example:", "Examples:"):
            section = "other"
            continue
        if section == "args":
            if line.startswith("    ") and not line.startswith("        ") and ":" in stripped:
                name, _, help_text = stripped.partition(":")
                current = name.split("(")[0].strip()
                args[current] = help_text.strip()
            elif current and stripped:
                args[current] = f"{args[current]} {stripped}"
        elif section is None:
            body.append(line)
    return Doc(summary, "\n".join(body).strip(), args)


# ---------------------------------------------------------------------------- arguments


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Bring a value from YAML or Python to the annotated type, or say what is wrong."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        last: UserError | None = None
        for option in options:
            try:
                return _coerce(value, option, where)
            except UserError as err:
                last = err
        raise last or UserError(f"{where}: unsupported value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{where}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        items = value if isinstance(value, list | tuple) else [value]
        inner = args[0] if args else Any
        return [_coerce(v, inner, where) for v in items]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return value
    if annotation in (Any, inspect.Parameter.empty):
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise UserError(f"{where}: expected {annotation.__name__}, got {value!r}")
        if isinstance(value, int | float) and (annotation is float or float(value).is_integer()):
            return annotation(value)
        try:
            return annotation(str(value))
        except ValueError:
            raise UserError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
    if annotation is Path:
        if isinstance(value, str | Path) and str(value):
            return Path(value)
        raise UserError(f"{where}: expected a path, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value  # as is: a config ``Secret`` keeps its marker, so records mask it
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where}: expected a string, got {value!r}")
    return value


def bind_arguments(fn: Callable, group: str, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check and coerce keyword arguments against the command's signature."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    params = sig.parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise UserError(
            f"{group} {name}: unknown argument '{unknown[0]}' "
            f"(arguments: {', '.join(params) or 'none'})"
        )
    bound: dict[str, Any] = {}
    for pname, param in params.items():
        where = f"{group} {name}: argument '{pname}'"
        if pname in kwargs:
            bound[pname] = _coerce(kwargs[pname], hints.get(pname, Any), where)
        elif param.default is inspect.Parameter.empty:
            raise UserError(f"{group} {name}: missing required argument '{pname}'")
    return bound


def _call(fn: Callable, bound: dict[str, Any]) -> Any:
    positional = [
        bound.pop(p.name)
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.name in bound
    ]
    return fn(*positional, **bound)


def command_line(
    group: str, name: str, fn: Callable, bound: dict[str, Any], suffix: str | None = None
) -> str:
    """A shell line that replays the call through ./run_toolbox.py (secrets masked)."""
    parts = ["./run_toolbox.py", group, name]
    params = inspect.signature(fn).parameters
    for pname, value in bound.items():
        value = redact.redact_data({pname: value})[pname]
        if params[pname].kind is inspect.Parameter.POSITIONAL_ONLY:
            parts.extend(str(v) for v in (value if isinstance(value, list) else [value]))
            continue
        flag = "--" + pname.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{pname.replace('_', '-')}")
        elif value is None:
            continue
        elif isinstance(value, list):
            for item in value:
                parts.extend([flag, _scalar(item)])
        else:
            parts.extend([flag, _scalar(value)])
    line = shlex.join(parts)
    # A comment ends at a newline whatever its quoting: the suffix is written JSON-escaped so no
    # character of it can start a line of its own.
    return line if not suffix else f"{line}  # suffix: {json.dumps(suffix)}"


def check_suffix(suffix: str | None) -> None:
    """Refuse a suffix holding control characters (it names a dir and a line of command.sh)."""
    if suffix and any(ord(c) < 32 or ord(c) == 127 for c in suffix):
        raise UserError(
            f"--suffix {suffix!r}: control characters (newline, tab, NUL...) are not allowed"
        )


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


# ---------------------------------------------------------------------------- logging

_log_target: contextvars.ContextVar[_LogFile | None] = contextvars.ContextVar(
    "bosun_log_file", default=None
)


class _LogFile:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.stream = path.open("a", encoding="utf-8")
        self.lost = False  # set when a line could not be written (one notice per file)

    def write(self, text: str) -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        with self.lock:
            try:
                self.stream.close()
            except OSError as err:  # a full disk: what was buffered is lost, nothing else
                print(f"warning: {self.path}: log lines lost ({err.strerror})", file=sys.stderr)


class ArtifactLogHandler(logging.Handler):
    """Writes each record, redacted, to the log.txt of the command running in this context."""

    def emit(self, record: logging.LogRecord) -> None:
        target = _log_target.get()
        if target is None:
            return
        try:
            target.write(redact.redact_text(self.format(record)))
        except OSError as err:
            # A full disk: the line is lost, the command goes on; one notice, no traceback.
            if not target.lost:
                target.lost = True
                print(f"warning: {target.path}: log lines lost ({err.strerror})", file=sys.stderr)
        except Exception:  # a log line must never break the command
            self.handleError(record)


class RedactingFilter(logging.Filter):
    """Masks secrets in records before any handler (console included) formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact.redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_handler_lock = threading.Lock()


def ensure_artifact_logging() -> None:
    """Attach the artifact log handler to the root logger once (at run time, not import)."""
    root = logging.getLogger()
    with _handler_lock:
        if any(isinstance(h, ArtifactLogHandler) for h in root.handlers):
            return
        handler = ArtifactLogHandler(level=logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)


@contextlib.contextmanager
def logging_to(path: Path) -> Iterator[None]:
    ensure_artifact_logging()
    target = _LogFile(path)
    token = _log_target.set(target)
    try:
        yield
    finally:
        _log_target.reset(token)
        target.close()


# ---------------------------------------------------------------------------- running


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def invoke(
    group: str, name: str, kwargs: dict[str, Any] | None = None, *, suffix: str | None = None
) -> Any:
    """Run a toolbox command in-process, inside its own numbered artifact dir.

    Returns the command's result. Raises what the command raised, after writing ``FAILURE``,
    ``exit_code`` and ``result.json``.
    """
    fn = get_command(group, name)
    check_suffix(suffix)
    bound = bind_arguments(fn, group, name, dict(kwargs or {}))
    if not options_of(fn).record:
        return _call(fn, bound)

    dir_name = f"{group}__{name}" + (f"__{suffix}" if suffix else "")
    with env.NextArtifactDir(dir_name) as path, logging_to(path / artifacts.LOG):
        yamlio.dump_file(
            redact.redact_data({k: _plain(v) for k, v in bound.items()}), path / artifacts.ARGS
        )
        script = path / artifacts.COMMAND
        script.write_text(
            "#!/bin/sh\n# Replays this toolbox call; masked secrets must be "
            f"supplied again.\ncd {shlex.quote(str(TOOLBOX_DIR.parent))} && "
            f"{command_line(group, name, fn, dict(bound), suffix)}\n"
        )
        script.chmod(0o755)
        log = logging.getLogger(f"toolbox.{group}")
        log.info("%s %s: started in %s", group, name, path)
        start_wall, start = _now(), time.perf_counter()
        result: Any = None
        error: BaseException | None = None
        try:
            result = _call(fn, dict(bound))
            return result
        except BaseException as err:
            error = err
            raise
        finally:
            duration = time.perf_counter() - start
            message = None
            if error is not None:
                message = redact.redact_text(one_line(error))
                log.error("%s %s: failed after %.2f s: %s", group, name, duration, message)
            else:
                log.info("%s %s: finished in %.2f s", group, name, duration)
            # Each record on its own, the small ones first: on a full disk, exit_code and
            # result.json still land, and a write that fails never hides the command's error.
            writes = [
                lambda: (path / artifacts.EXIT_CODE).write_text(f"{exit_code_for(error)}\n"),
                lambda: artifacts.CommandResult.finished(
                    group, name, suffix, start_wall, duration, message, result
                ).write(path),
            ]
            if error is not None:
                tb = redact.redact_text("".join(traceback.format_exception(error)))
                writes.append(
                    lambda: (path / artifacts.FAILURE).write_text(
                        f"{group} {name} failed: {message}\n\n{tb}"
                    )
                )
            lost: list[OSError] = []
            for write in writes:
                try:
                    write()
                except OSError as err:
                    lost.append(err)
            if lost and error is None:
                raise lost[0]


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def exit_code_for(error: BaseException | None) -> int:
    if error is None:
        return 0
    if isinstance(error, UserError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return 130
    return 1
