"""``ci/run PROJECT STEP``: a project's steps as a CI job, with presets and ``/var`` overrides.

The trigger text (``--trigger-file`` or ``$BOSUN_TRIGGER``) speaks the TOPSAIL dialect::

    /test JOB PROJECT [PRESET ...]
    /var tests.tap.count: 20
    /only test
    /skip cleanup

Steps are the functions ``prepare``, ``test`` and ``cleanup`` of the project's ``test.py``;
``ci`` runs cleanup, prepare, test, cleanup, and the last cleanup always runs. The run root
receives the config snapshot, ``junit.xml``, ``FAILURES``, ``FINISHED``, ``exit_code`` and
``run.json``, then the post-mortem report, also when the run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import logging
import os
import signal
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn

from library import artifacts, config, env, junit, redact, run, rundir, toolbox, yamlio
from library.cli import print_error, setup_console_logging
from library.errors import UserError, one_line, storage_error_message

log = logging.getLogger("ci")

STEPS = ("prepare", "test", "cleanup")
SEQUENCE = {"ci": ["cleanup", "prepare", "test", "cleanup"]}


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the launcher; remaining steps but the last cleanup are skipped."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ---------------------------------------------------------------------------- trigger text


@dataclass
class Trigger:
    job: str | None = None
    project: str | None = None
    presets: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    only: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)


def parse_trigger(text: str, source: str = "trigger") -> Trigger:
    """Parse ``/test``, ``/var``, ``/only`` and ``/skip`` lines; other lines are comments."""
    trigger = Trigger()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("/"):
            continue
        directive, _, rest = line.partition(" ")
        rest = rest.strip()
        where = f"{source}:{number}"
        if directive == "/test":
            words = rest.split()
            if len(words) < 2:
                raise UserError(f"{where}: '/test' needs 'JOB PROJECT [PRESET ...]', got {line!r}")
            trigger.job, trigger.project, *presets = words
            trigger.presets.extend(presets)
        elif directive == "/var":
            trigger.variables.update(config.parse_var(rest, f"{where}: /var"))
        elif directive in ("/only", "/skip"):
            if rest not in (*STEPS,):
                raise UserError(
                    f"{where}: {directive} takes one of {', '.join(STEPS)}, got {rest!r}"
                )
            (trigger.only if directive == "/only" else trigger.skip).append(rest)
        else:
            raise UserError(
                f"{where}: unknown directive {directive!r} (known: /test, /var, /only, /skip)"
            )
    return trigger


# ---------------------------------------------------------------------------- steps


def load_test_module(project: str) -> ModuleType:
    path = config.project_testing_dir(project) / "test.py"
    if not path.is_file():
        raise UserError(f"project {project!r} has no steps: {path} is missing")
    spec = importlib.util.spec_from_file_location(f"bosun_projects.{project}.test", path)
    if spec is None or spec.loader is None:
        raise UserError(f"project {project!r}: {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Sibling modules of test.py are importable from it, as in TOPSAIL.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(path.parent))
    return module


def plan(step: str, trigger: Trigger, module: ModuleType, project: str) -> list[str]:
    known = [s for s in STEPS if callable(getattr(module, s, None))]
    if step in SEQUENCE:
        steps = [s for s in SEQUENCE[step] if s in known]
    elif step in STEPS:
        if step not in known:
            raise UserError(
                f"project {project!r} has no step {step!r} "
                f"(its test.py defines: {', '.join(known) or 'none'})"
            )
        steps = [step]
    else:
        raise UserError(f"unknown step {step!r} (use one of {', '.join([*STEPS, *SEQUENCE])})")
    if trigger.only:
        steps = [s for s in steps if s in trigger.only]
    return [s for s in steps if s not in trigger.skip]


@dataclass
class StepResult:
    name: str
    dir: Path
    status: str = "success"
    duration_s: float = 0.0
    error: str | None = None
    interrupted: Interrupted | None = None


@contextlib.contextmanager
def _signals_raise() -> Iterator[Any]:
    """Turn SIGINT/SIGTERM into ``Interrupted`` for the duration of the run only."""
    # Work running in threads (a Parallel block's scale runs) cannot receive the exception:
    # it watches the stop request instead, stops cleanly and writes its artifacts.
    with run.stop_request_scope() as request:
        request.make_interrupt = Interrupted
        request.records_phase = False

        def handler(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if request.records_phase:
                log.warning("%s while the run's records are written: they are written first", name)
                return
            request.signals += 1
            if request.signum is None:
                request.signum = signum
            request.set(name)
            if request.signals > 1:
                # Records are never given up: the running work is already stopping; raising
                # again would pull this thread out of the wait for its result files.
                log.warning("%s again: the run is already stopping; its records come next", name)
                return
            if request.shielded:
                # The main thread waits on work that watches the request (a scale run, a
                # Parallel block): it stops by itself; the rest of the step is skipped after.
                log.warning("%s: stopping the running work, then the remaining steps", name)
                request.pending = Interrupted(signum)
                return
            raise Interrupted(signum)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield request
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


class Console:
    """Step banners: rich in an interactive terminal, plain lines when ``CI`` is set."""

    def __init__(self) -> None:
        self.rich = None
        if sys.stdout.isatty() and not os.environ.get("CI"):
            from rich.console import Console as RichConsole

            self.rich = RichConsole()

    def line(self, text: str, style: str = "") -> None:
        if self.rich is not None:
            self.rich.print(text, style=style or None, highlight=False)
        else:
            print(text, flush=True)


def run_steps(
    steps: list[str], module: ModuleType, console: Console
) -> tuple[list[StepResult], int]:
    results: list[StepResult] = []
    interrupted: Interrupted | None = None
    last_cleanup = len(steps) - 1 if steps and steps[-1] == "cleanup" and len(steps) > 1 else None
    for index, name in enumerate(steps):
        if interrupted is not None and index != last_cleanup:
            continue
        result = _run_step(name, module, console)
        request = run.stop_request()
        if interrupted is None and request is not None and request.is_set():
            # A signal that arrived while the step waited on stop-aware work (or an exception
            # it left pending): the step is interrupted even if it returned normally.
            request.pending = None
            interrupted = Interrupted(request.signum or signal.SIGINT)
            if result.status == "success" or result.error is None:
                result.status, result.error = "failure", f"interrupted by {interrupted}"
        if result.interrupted is not None and interrupted is None:
            interrupted = result.interrupted
        results.append(result)
        if result.status == "success":
            console.line(f"    {name}: passed in {result.duration_s:.1f} s", "green")
        else:
            console.line(f"    {name}: FAILED in {result.duration_s:.1f} s: {result.error}", "red")
    if interrupted is not None:
        return results, 128 + interrupted.signum
    return results, 0 if all(r.status == "success" for r in results) else 1


def _run_step(name: str, module: ModuleType, console: Console) -> StepResult:
    """One step in its own dir; whatever happens (a full disk included) it returns a result."""
    with contextlib.ExitStack() as stack:
        try:
            step_dir = stack.enter_context(env.NextArtifactDir(name))
        except OSError as err:
            # Not even the step's dir could be made (a full disk): the step fails, the run goes
            # on to its last cleanup and its records.
            message = storage_error_message(err) or one_line(err)
            return StepResult(name, env.artifact_dir() / name, "failure", 0.0, message)
        result = StepResult(name, step_dir)
        console.line(f"==> {name}  ({step_dir})", "bold")
        start = time.perf_counter()
        try:
            if name == "test" and config.project.get_config("sweep", None):
                from library.sweep import run_sweep

                run_sweep(module.test)
            else:
                getattr(module, name)()
        except Interrupted as err:
            result.interrupted = err
            result.status, result.error = "failure", f"interrupted by {err}"
        except Exception as err:
            message = isinstance(err, OSError) and storage_error_message(err) or one_line(err)
            result.status, result.error = "failure", redact.redact_text(message)
            if not isinstance(err, UserError):
                _write_quietly(
                    step_dir / artifacts.FAILURE,
                    redact.redact_text(
                        f"step {name} failed: {result.error}\n\n{traceback.format_exc()}"
                    ),
                )
        result.duration_s = time.perf_counter() - start
    return result


def _write_quietly(path: Path, text: str) -> bool:
    """Write a record; a full disk is logged, never raised out of the error handling."""
    try:
        path.write_text(text)
        return True
    except OSError as err:
        log.error("could not write %s: %s", path, storage_error_message(err) or err)
        return False


# ---------------------------------------------------------------------------- run root files


def _toolbox_calls(root: Path) -> list[dict[str, Any]]:
    return [
        {**result.to_dict(), "_dir": directory}
        for directory, result in artifacts.command_results(root)
    ]


def write_junit(root: Path, project: str, results: list[StepResult]) -> None:
    cases: list[junit.Case | ET.Element] = [
        junit.Case(f"{project}.steps", result.dir.name, result.duration_s, result.error)
        for result in results
    ]
    for call in _toolbox_calls(root):
        rel = call["_dir"].relative_to(root)
        step = rel.parts[0] if len(rel.parts) > 1 else "run"
        cases.append(
            junit.Case(
                f"{project}.{step}", str(rel), float(call.get("duration_s") or 0), call.get("error")
            )
        )
    # Commands may leave their own JUnit fragments (one testcase per flock, per notebook...).
    for fragment in sorted(root.rglob(artifacts.JUNIT)):
        if fragment.parent != root:
            cases.extend(junit.read_cases(fragment))
    junit.write(root / artifacts.JUNIT, junit.suite(f"bosun.{project}", cases))


def write_failures(root: Path) -> None:
    parts = []
    for path in sorted(root.rglob(artifacts.FAILURE)):
        parts.append(f"=== {path.relative_to(root)}\n{path.read_text(errors='replace').rstrip()}\n")
    target = root / artifacts.FAILURES
    if parts:
        target.write_text("\n".join(parts))
    elif target.exists():
        target.unlink()


def _post_mortem(root: Path, console: Console) -> str | None:
    """Build the report; a failure here is recorded, never hides the run's own result."""
    try:
        from library import report
    except ImportError:
        return None
    try:
        index = report.post_mortem(root)
        console.line(f"==> report: {index}")
        if hasattr(report, "record_history"):
            report.record_history(root)
        return None
    except Exception as err:
        message = one_line(err)
        log.error("post-mortem failed: %s", message)
        _write_quietly(root / "report_FAILURE", redact.redact_text(traceback.format_exc()))
        return message


# ---------------------------------------------------------------------------- entry point


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _write_whole(path, json.dumps(data, indent=2) + "\n")


def _write_whole(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: on a full disk, no half-written record."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def launch(
    project: str,
    step: str,
    presets: list[str],
    variables: list[str],
    trigger_text: str | None,
    trigger_source: str,
) -> int:
    """Run a project's step(s); returns the exit code (0 pass, 1 fail, 128+N on signal N)."""
    trigger = parse_trigger(trigger_text, trigger_source) if trigger_text else Trigger()
    if trigger.project and trigger.project != project:
        raise UserError(
            f"{trigger_source}: '/test' names project {trigger.project!r} "
            f"but ci/run was called for {project!r}"
        )
    overrides = [("trigger", trigger.variables)] if trigger.variables else []
    overrides += [("cli", config.parse_var(text)) for text in variables]
    root = env.artifact_dir()
    # One run at a time per artifact dir: a second is refused before it writes anything.
    with rundir.owned(root):
        return _launch_owned(root, project, step, presets, trigger, overrides)


def _launch_owned(
    root: Path,
    project: str,
    step: str,
    presets: list[str],
    trigger: Trigger,
    overrides: list[tuple[str, dict[str, Any]]],
) -> int:
    # variable_overrides.yaml is CI input (TOPSAIL's), never written by bosun: the overrides a
    # run applied go to overrides_applied.yaml, so a rerun into this dir does not replay them.
    cfg = config.load(
        project,
        presets=[*presets, *trigger.presets],
        overrides=overrides,
        overrides_file=root / config.OVERRIDES_FILE,
    )
    rundir.reserve(root)
    cfg.write_snapshot(root)
    module = load_test_module(project)
    steps = plan(step, trigger, module, project)
    console = Console()
    console.line(
        f"bosun ci: project {project}, step {step} ({' -> '.join(steps) or 'nothing'}), "
        f"presets: {', '.join(cfg.presets_applied) or 'none'}; artifacts: {root}"
    )
    started = _now()
    with (
        config.using(cfg),
        toolbox.logging_to(root / artifacts.CI_LOG),
        _signals_raise() as request,
    ):
        results, code = run_steps(steps, module, console)
        # From here on a signal is only logged: the run's records are written whatever comes.
        request.records_phase = True
        return _write_records(root, project, step, cfg, trigger, started, results, code, console)


def _write_records(
    root: Path,
    project: str,
    step: str,
    cfg: config.ProjectConfig,
    trigger: Trigger,
    started: str,
    results: list[StepResult],
    code: int,
    console: Console,
) -> int:
    # The last records must land even on a full disk: the reserve is given back for them, and
    # each is written on its own (one that fails is logged and makes the run a failure).
    rundir.release(root)
    lost: list[str] = []

    def record(what: str, write: Callable[[], object]) -> None:
        try:
            write()
        except OSError as err:
            lost.append(what)
            log.error("could not write %s: %s", what, storage_error_message(err) or err)

    record(artifacts.JUNIT, lambda: write_junit(root, project, results))
    record(artifacts.FAILURES, lambda: write_failures(root))
    if lost and code == 0:
        code = 1
    run_info = {
        "project": project,
        "step": step,
        "steps": [r.name for r in results],
        "presets": cfg.presets_applied,
        "overrides": config.mask(cfg.overrides),  # by source, as config.yaml
        "job": trigger.job,
        "start": started,
        "end": _now(),
        "result": "success" if code == 0 else "failure",
        "exit_code": code,
        "step_results": [
            {
                "name": r.name,
                "dir": r.dir.name,
                "status": r.status,
                "duration_s": round(r.duration_s, 3),
                "error": r.error,
            }
            for r in results
        ],
        "report_error": None,
    }
    # The report and the history read run.json and exit_code: both exist before they run.
    record(artifacts.EXIT_CODE, lambda: _write_whole(root / artifacts.EXIT_CODE, f"{code}\n"))
    record(artifacts.RUN_INFO, lambda: _write_json(root / artifacts.RUN_INFO, run_info))
    run_info["report_error"] = _post_mortem(root, console)
    if run_info["report_error"]:
        record(artifacts.RUN_INFO, lambda: _write_json(root / artifacts.RUN_INFO, run_info))
    record(artifacts.FINISHED, lambda: (root / artifacts.FINISHED).write_text(_now() + "\n"))
    verdict = "PASSED" if code == 0 else "FAILED"
    if lost:
        console.line(f"bosun ci: could not write {', '.join(lost)} (disk full?)", "red")
    console.line(f"bosun ci: {verdict} (exit {code}); artifacts: {root}", "bold")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ci/run",
        description="Run a project's steps as a CI job.",
        epilog="Trigger text (from --trigger-file or $BOSUN_TRIGGER): '/test JOB PROJECT "
        "[PRESET ...]', '/var key: value', '/only STEP', '/skip STEP'.",
    )
    parser.add_argument("project", help="project under projects/")
    parser.add_argument("step", help=f"one of {', '.join([*STEPS, *SEQUENCE])}")
    parser.add_argument(
        "--preset", action="append", default=[], help="preset to apply (repeatable)"
    )
    parser.add_argument(
        "--var", action="append", default=[], help="override 'key: value' (repeatable)"
    )
    parser.add_argument("--trigger-file", type=Path, help="file holding the trigger text")

    def one_line_error(message: str) -> NoReturn:
        print_error(f"ci/run: {message} (see ci/run --help)")
        raise SystemExit(2)

    parser.error = one_line_error  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    setup_console_logging(os.environ.get("BOSUN_DEBUG") == "1")
    try:
        trigger_text, source = None, "trigger"
        if args.trigger_file is not None:
            try:
                trigger_text = yamlio.read_text(args.trigger_file, "trigger file")
                source = str(args.trigger_file)
            except UserError as err:
                raise UserError(f"--trigger-file {err}") from None
        elif os.environ.get("BOSUN_TRIGGER"):
            trigger_text, source = os.environ["BOSUN_TRIGGER"], "$BOSUN_TRIGGER"
        return launch(args.project, args.step, args.preset, args.var, trigger_text, source)
    except UserError as err:
        print_error(str(err))
        return err.exit_code
    except OSError as err:
        message = storage_error_message(err)
        if message is None and os.environ.get("BOSUN_DEBUG") == "1":
            raise
        print_error(message or "internal error: " + one_line(err))
        return 1
    except Exception as err:
        if os.environ.get("BOSUN_DEBUG") == "1":
            raise
        print_error(f"internal error: {one_line(err)} (BOSUN_DEBUG=1 shows the traceback)")
        return 1
