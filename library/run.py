"""Running things from orchestration code: shell commands, toolbox commands, parallel blocks.

The TOPSAIL names, minus the subprocess per call: ``run_toolbox`` runs the command in-process
inside its own numbered artifact dir, and ``Parallel`` runs its tasks in threads, each seeing
the block's artifact dir and a config that refuses ``set_config``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import logging
import shlex
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from library import artifacts, command_args, config, env, redact, toolbox
from library.errors import UserError, one_line

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)


class StopRequest:
    """A request to stop, shared by a launcher and every task it runs (threads included)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self.signals = 0  # SIGINT/SIGTERM received by the launcher
        self.signum: int | None = None  # the first of them
        # While the main thread waits on work that watches this request (a Parallel block, a
        # scale run), a signal must not raise in it: the work stops by itself and writes its
        # records. The exception the launcher would have raised waits in ``pending``.
        self._shield = 0
        self.pending: BaseException | None = None
        # How the launcher turns a signal into the exception that ends a step (ci/run sets it).
        self.make_interrupt: Callable[[int], BaseException] | None = None
        # ci/run: True while the run's records are written (a signal is then only logged).
        self.records_phase = False

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def shielded(self) -> bool:
        return self._shield > 0

    def note_signal(self, signum: int) -> None:
        """A signal taken by another handler (a distributed run's): the launcher learns of it
        as if its own handler had run while shielded (the step ends after the running work)."""
        self.signals += 1
        if self.signum is None:
            self.signum = signum
        self.set(signal.Signals(signum).name)
        if self.signals == 1 and self.pending is None and self.make_interrupt is not None:
            self.pending = self.make_interrupt(signum)

    @contextlib.contextmanager
    def watched(self, raise_pending: bool = True) -> Iterator[None]:
        """Mark a wait of the main thread on work that watches this request (see ``pending``).

        On leaving the outermost such block, a signal received meanwhile raises its exception
        here (unless ``raise_pending`` is false: then at the next ``run_toolbox``/``run``
        call, or when the step ends), so the rest of the step is skipped."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1
        if raise_pending:
            self.raise_pending()

    def raise_pending(self) -> None:
        """Raise the exception a signal left pending, in the main thread outside any wait."""
        if (
            self.pending is not None
            and self._shield == 0
            and threading.current_thread() is threading.main_thread()
        ):
            pending, self.pending = self.pending, None
            raise pending


def watching_stop(raise_pending: bool = True) -> contextlib.AbstractContextManager[None]:
    """``with run.watching_stop():`` around a wait on work that stops by itself on the current
    launcher's stop request (a no-op outside a launcher)."""
    request = _stop_request.get()
    if request is None:
        return contextlib.nullcontext()
    return request.watched(raise_pending)


def _raise_pending_stop() -> None:
    request = _stop_request.get()
    if request is not None:
        request.raise_pending()


# The launcher's stop request. A context variable, so that the threads of a Parallel block
# (which run in a copy of the caller's context) see the very same request.
_stop_request: contextvars.ContextVar[StopRequest | None] = contextvars.ContextVar(
    "bosun_stop_request", default=None
)


def stop_request() -> StopRequest | None:
    """The stop request of the current launcher (``ci/run``), or None outside one."""
    return _stop_request.get()


def stop_requested() -> bool:
    """Whether the current launcher was asked to stop (False outside a launcher)."""
    request = _stop_request.get()
    return request is not None and request.is_set()


def request_stop(reason: str) -> bool:
    """Ask the current launcher's work to stop; False when there is no launcher to ask."""
    request = _stop_request.get()
    if request is None:
        return False
    request.set(reason)
    return True


@contextlib.contextmanager
def stop_request_scope(request: StopRequest | None = None) -> Iterator[StopRequest]:
    """Make REQUEST (a new one by default) the current stop request inside the block."""
    request = request if request is not None else StopRequest()
    token = _stop_request.set(request)
    try:
        yield request
    finally:
        _stop_request.reset(token)


class CommandFailed(UserError):
    """A shell command exited non-zero."""

    exit_code = 1


class ParallelFailed(UserError):
    """One or more tasks of a ``Parallel`` block failed; the message lists every one."""

    exit_code = 1

    def __init__(self, name: str, failures: list[tuple[str, BaseException]]):
        self.failures = failures
        listed = "; ".join(f"{task}: {one_line(err)}" for task, err in failures)
        super().__init__(f"parallel block {name!r}: {len(failures)} task(s) failed: {listed}")


def run(
    cmd: str | Sequence[str],
    capture_stdout: bool = False,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run a program; its output is appended to ``run.log`` in the current artifact dir.

    ``cmd`` is either a list of arguments, run without a shell (``run.run(["echo", value])``:
    a value stays one argument whatever characters it holds), or a fixed shell line run with
    bash. Never paste a value from config, a trigger or a file into a shell line: pass a list,
    or quote it with ``shlex.quote``.

    With ``capture_stdout`` the output is also returned in ``.stdout`` (text). A non-zero exit
    raises ``CommandFailed`` when ``check`` is true.
    """
    _raise_pending_stop()
    if isinstance(cmd, str):
        argv, shown_cmd = ["bash", "-c", cmd], cmd
    else:
        argv = [str(part) for part in cmd]
        if not argv:
            raise UserError("run.run: the argument list is empty")
        shown_cmd = shlex.join(argv)
    if any("\0" in part for part in argv):
        raise UserError(f"run.run: a NUL character in the command: {shown_cmd!r}")
    log_path = env.artifact_dir() / "run.log"
    shown = redact.redact_text(shown_cmd)
    log.info("run: %s", shown)
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"command timed out after {timeout} s: {shown}") from None
    except FileNotFoundError:
        raise CommandFailed(f"command not found: {argv[0]!r} (in {shown})") from None
    duration = time.perf_counter() - start
    with log_path.open("a", encoding="utf-8") as out:
        out.write(f"$ {shown}\n{redact.redact_text(proc.stdout)}")
        if proc.stderr:
            out.write(f"[stderr]\n{redact.redact_text(proc.stderr)}")
        out.write(f"[exit {proc.returncode} after {duration:.2f} s]\n\n")
    if not capture_stdout:
        proc = subprocess.CompletedProcess(proc.args, proc.returncode, None, proc.stderr)
    if check and proc.returncode != 0:
        last = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        raise CommandFailed(
            f"command failed (exit {proc.returncode}): {shown}"
            + (f": {redact.redact_text(last[0])}" if last[0] else "")
            + f" (output in {log_path})"
        )
    return proc


def run_toolbox(
    group: str, command: str, /, *, artifact_dir_suffix: str | None = None, **kwargs: Any
) -> Any:
    """Run a toolbox command in-process with these arguments; returns its result."""
    _raise_pending_stop()
    return toolbox.invoke(group, command, kwargs, suffix=artifact_dir_suffix)


def toolbox_args_from_config(
    group: str,
    command: str,
    prefix: str | None = None,
    suffix: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The arguments ``run_toolbox_from_config`` would pass, resolved from the current project."""
    cfg = config.current()
    if cfg.path is None:
        raise UserError("the current config has no file, so it has no command_args.yaml.j2")
    template = command_args.template_path(cfg.path.parent)
    return command_args.resolve(
        template, cfg.resolved(), group, command, prefix=prefix, suffix=suffix, extra=extra
    )


def run_toolbox_from_config(
    group: str,
    command: str,
    prefix: str | None = None,
    suffix: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Run a toolbox command with its arguments from ``command_args.yaml.j2`` (``extra`` wins)."""
    _raise_pending_stop()
    args = toolbox_args_from_config(group, command, prefix, suffix, extra)
    return toolbox.invoke(group, command, args, suffix=suffix)


class Parallel:
    """Collect tasks in a block and run them at its exit, in threads, in a ``NNN__name`` dir.

    Every task runs even when others fail; then one ``ParallelFailed`` lists every failure
    (unless ``exit_on_exception`` is false, in which case failures are only recorded).
    """

    def __init__(self, name: str, exit_on_exception: bool = True, max_workers: int | None = None):
        self.name = name
        self.exit_on_exception = exit_on_exception
        self.max_workers = max_workers
        self.tasks: list[tuple[Callable, tuple, dict]] = []
        self.path: Path | None = None
        self.failures: list[tuple[str, BaseException]] = []

    def delayed(self, fn: Callable, *args: Any, **kwargs: Any) -> None:
        self.tasks.append((fn, args, kwargs))

    def __enter__(self) -> Parallel:
        self.path = env.next_dir(self.name)
        return self

    def _dir(self) -> Path:
        if self.path is None:
            raise RuntimeError(f"parallel block {self.name!r}: tasks run inside its `with`")
        return self.path

    def _run_task(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        with env.using_artifact_dir(self._dir()), config.frozen(self.name):
            return fn(*args, **kwargs)

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is not None:
            return False  # the block itself failed: its tasks are not started
        if not self.tasks:
            return False
        workers = self.max_workers or len(self.tasks)
        # The tasks see the launcher's stop request (a scale run stops and writes its records):
        # a signal must not pull the main thread out of this wait before they are written.
        with watching_stop():
            with concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix=f"parallel-{self.name}"
            ) as pool:
                futures = {
                    pool.submit(
                        contextvars.copy_context().run, self._run_task, fn, args, kwargs
                    ): _describe(fn, args, kwargs)
                    for fn, args, kwargs in self.tasks
                }
                for future in concurrent.futures.as_completed(futures):
                    err = future.exception()
                    if err is not None:
                        self.failures.append((futures[future], err))
            if self.failures:
                report = "\n\n".join(
                    f"task {task}:\n{''.join(traceback.format_exception(err))}"
                    for task, err in self.failures
                )
                (self._dir() / artifacts.FAILURE).write_text(redact.redact_text(report))
                error = ParallelFailed(self.name, self.failures)
                log.error("%s", error)
                if self.exit_on_exception:
                    raise error
        return False


def _describe(fn: Callable, args: tuple, kwargs: dict) -> str:
    if fn is run_toolbox and len(args) >= 2:
        detail = " ".join(f"{k}={v}" for k, v in kwargs.items() if not redact.is_secret_name(k))
        return f"{args[0]} {args[1]}" + (f" ({detail})" if detail else "")
    name = getattr(fn, "__name__", repr(fn))
    shown = ", ".join(
        [
            *map(repr, args),
            *(f"{k}={v!r}" for k, v in kwargs.items() if not redact.is_secret_name(k)),
        ]
    )
    return f"{name}({redact.redact_text(shown)})"
