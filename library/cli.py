"""``./run_toolbox.py``: the toolbox from a terminal.

``./run_toolbox.py`` lists the groups without importing them; ``GROUP COMMAND --opt value``
builds a typer command from the function's signature and docstring, for that group only.
Every error is one line on stderr and a non-zero exit; ``BOSUN_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from library import config as cfgmod
from library import redact, run, toolbox, yamlio
from library.errors import UserError, one_line, storage_error_message

PROG = "./run_toolbox.py"
FROM_CONFIG_HELP = "Run a command with its arguments from the project's command_args.yaml.j2."


def _print_groups() -> None:
    lines = [
        f"Usage: {PROG} GROUP COMMAND [OPTIONS]",
        f"       {PROG} from_config GROUP COMMAND "
        "[--project P | --config F] [--preset P]... [--var 'k: v']... [--show-args]",
        f"       {PROG} GROUP --help",
        "",
        "Groups:",
    ]
    names = toolbox.group_names()
    width = max([len(n) for n in names] + [len("from_config")])
    for name in names:
        lines.append(f"  {name:<{width}}  {toolbox.group_summary(name)}")
    lines.append(f"  {'from_config':<{width}}  {FROM_CONFIG_HELP}")
    print("\n".join(lines))


def print_error(message: str) -> None:
    """The one ``error:`` line on stderr; a value holding a secret (a URL's password, a token
    parameter) is masked like in every log."""
    print(f"error: {redact.redact_text(message)}", file=sys.stderr)


def setup_console_logging(verbose: bool = False) -> None:
    """Console log lines on stderr: rich in a terminal, plain when ``CI`` is set or piped."""
    root = logging.getLogger()
    if any(getattr(h, "_bosun_console", False) for h in root.handlers):
        return
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty() and not os.environ.get("CI"):
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, markup=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.setLevel(level)
    handler._bosun_console = True  # type: ignore[attr-defined]
    handler.addFilter(toolbox.RedactingFilter())
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, level))
    # Third-party chatter stays out of the console; it still reaches log.txt at WARNING.
    for noisy in ("asyncio", "urllib3", "matplotlib", "distributed", "bokeh", "tornado"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---------------------------------------------------------------------------- typer plumbing


def _usage_errors():
    try:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError
    except ImportError:  # typer before 0.20 depends on click itself
        # Older typer raises click's own classes (typer vendors them from 0.20 on).
        from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[assignment]
    return UsageError, NoArgsIsHelpError


def _paragraphs(text: str) -> str:
    """Docstring paragraphs re-flowed, so the help text wraps to the terminal, not the source."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def _typer_signature(fn: Callable) -> inspect.Signature:
    """A signature typer understands: positional-only -> Argument, the rest -> Option."""
    import typer

    doc = toolbox.parse_docstring(fn)
    hints = typing.get_type_hints(fn)
    aliases = toolbox.options_of(fn).aliases
    params = []
    for p in inspect.signature(fn).parameters.values():
        annotation = hints.get(p.name, str)
        required = p.default is inspect.Parameter.empty
        help_text = doc.args.get(p.name)
        flag = p.name.replace("_", "-")
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            default = typer.Argument(
                ... if required else p.default,
                help=help_text,
                show_default=not required,
                metavar=p.name.upper(),
            )
        elif annotation is bool:
            decls = [f"--{flag}/--no-{flag}", *aliases.get(p.name, ())]
            default = typer.Option(False if required else p.default, *decls, help=help_text)
        else:
            decls = [f"--{flag}", *aliases.get(p.name, ())]
            default = typer.Option(
                ... if required else p.default,
                *decls,
                help=help_text,
                show_default=not required and p.default is not None,
            )
        params.append(
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=default,
                annotation=annotation,
            )
        )
    return inspect.Signature(params)


def _typer_app(group: str, commands: dict[str, Callable], runner: Callable[[str, dict], Any]):
    import typer

    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        help=toolbox.group_summary(group),
        pretty_exceptions_enable=False,
    )
    # A callback keeps typer in group mode even when the group has a single command.
    app.callback()(lambda: None)
    for name, fn in commands.items():
        doc = toolbox.parse_docstring(fn)
        original = inspect.signature(fn).parameters

        def callback(_name=name, _original=original, **kwargs):
            # Unset list options arrive as empty tuples: give the function its own default.
            for key, value in list(kwargs.items()):
                if value in ((), []) and _original[key].default is None:
                    kwargs[key] = None
                elif isinstance(value, tuple):
                    kwargs[key] = list(value)
            return runner(_name, kwargs)

        callback.__signature__ = _typer_signature(fn)  # type: ignore[attr-defined]
        callback.__annotations__ = {}
        callback.__doc__ = _paragraphs(doc.summary + "\n\n" + doc.description)
        app.command(name=name, help=callback.__doc__, short_help=doc.summary)(callback)
    return app


def _run_click(app, argv: Sequence[str], prog: str) -> int:
    import typer

    usage_error, no_args_error = _usage_errors()
    click_cmd = typer.main.get_command(app)
    try:
        code = click_cmd.main(args=list(argv), prog_name=prog, standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except no_args_error as err:
        print(err.format_message())
        return 0
    except usage_error as err:
        ctx = getattr(err, "ctx", None)
        where = ctx.command_path if ctx else prog
        print_error(f"{where}: {err.format_message()} (see {where} --help)")
        return 2
    return 0


# ---------------------------------------------------------------------------- entry points


def _run_group(group: str, argv: Sequence[str]) -> int:
    commands = toolbox.load_group(group)

    def runner(name: str, kwargs: dict) -> Any:
        return toolbox.invoke(group, name, kwargs)

    return _run_click(_typer_app(group, commands, runner), argv, f"{PROG} {group}")


def from_config(
    group: str,
    /,
    command: str,
    project: str | None = None,
    config: Path | None = None,
    prefix: str | None = None,
    suffix: str | None = None,
    extra: str | None = None,
    preset: list[str] | None = None,
    var: list[str] | None = None,
    show_args: bool = False,
) -> None:
    """Run a toolbox command with its arguments from the project's command_args.yaml.j2.

    Args:
        group: Toolbox group of the command.
        command: Command name.
        project: Project name (projects/NAME/testing/config.yaml).
        config: A config file, instead of --project.
        prefix: Entry prefix in command_args.yaml.j2 (``prefix/group command``).
        suffix: Entry suffix (``group command/suffix``); also names the artifact dir.
        extra: YAML mapping of arguments that win over the template.
        preset: Preset to apply (repeatable, in order).
        var: Override 'dotted.key: value' (repeatable, applied after presets).
        show_args: Print the resolved arguments as YAML and run nothing.
    """
    toolbox.check_suffix(suffix)
    cfg = load_config_from_cli(project, config, preset or [], var or [])
    extra_args = {}
    if extra:
        extra_args = yamlio.loads(extra, "--extra")
        if not isinstance(extra_args, dict):
            raise UserError(f"--extra {extra!r}: expected a YAML mapping like '{{count: 5}}'")
    with cfgmod.using(cfg):
        args = run.toolbox_args_from_config(group, command, prefix, suffix, extra_args)
        if show_args:
            sys.stdout.write(yamlio.dumps({f"{group} {command}": args}))
            return
        result = toolbox.invoke(group, command, args, suffix=suffix)
        if result is not None:
            logging.getLogger("toolbox").debug("result: %s", result)


def load_config_from_cli(
    project: str | None, config_file: Path | None, presets: list[str], variables: list[str]
):
    """Load a project config from CLI options (``$ARTIFACT_DIR/variable_overrides.yaml`` last)."""
    overrides = [("cli", cfgmod.parse_var(text)) for text in variables]
    overrides_file = None
    if os.environ.get("ARTIFACT_DIR"):
        overrides_file = Path(os.environ["ARTIFACT_DIR"]) / cfgmod.OVERRIDES_FILE
    return cfgmod.load(
        project, config_file, presets=presets, overrides=overrides, overrides_file=overrides_file
    )


def _run_from_config(argv: Sequence[str]) -> int:
    import typer

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    doc = toolbox.parse_docstring(from_config)
    fn = toolbox.command(record=False)(from_config)

    def callback(**kwargs):
        for key in ("preset", "var"):
            kwargs[key] = list(kwargs[key] or [])
        fn(kwargs.pop("group"), **kwargs)

    signature = _typer_signature(fn)
    # GROUP and COMMAND are both positional on the command line.
    params = list(signature.parameters.values())
    params[1] = params[1].replace(
        default=typer.Argument(..., help=doc.args["command"], metavar="COMMAND")
    )
    callback.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    callback.__annotations__ = {}
    app.command(name="from_config", help=doc.summary)(callback)
    return _run_click(app, argv, f"{PROG} from_config")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_groups()
        return 0
    verbose = os.environ.get("BOSUN_DEBUG") == "1"
    setup_console_logging(verbose)
    try:
        if argv[0] == "from_config":
            return _run_from_config(argv[1:])
        return _run_group(argv[0], argv[1:])
    except UserError as err:
        print_error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except OSError as err:
        message = storage_error_message(err)
        if message is None and verbose:
            raise
        print_error(message or "internal error: " + one_line(err))
        return 1
    except Exception as err:  # a bug: one line here, the traceback in FAILURE or on request
        if verbose:
            raise
        print_error(
            f"internal error: {one_line(err)} "
            "(the command's FAILURE file has the traceback; BOSUN_DEBUG=1 shows it here)"
        )
        return 1
