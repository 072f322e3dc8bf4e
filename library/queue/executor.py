"""The executor: runs of its lane, N at a time, each as ``ci/run PROJECT STEP`` in a process.

Each run gets its own artifact dir under the artifacts root (``NNNNNN__project__step``, with
``__attemptN`` when tried again). Before the process starts, the dir receives
``variable_overrides.yaml`` (the run's vars, which ``ci/run`` applies last, as data: the
path ``/var`` values take) and ``trigger.json`` (the event and rule that asked for it, which
the results store records with the run). Nothing reaches a shell: the process gets an argv.

The process runs in a session of its own (a cancel signals its whole group) and is told to
end (SIGTERM, which ``ci/run`` turns into its interrupted path: last cleanup, records) if the
executor's process dies. When the executor starts it accounts for every run its lane left
``running``: the run's process, if still alive, is ended, and the run is queued again or,
out of attempts, failed, with the reason in its notes.

When a run ends its results are recorded in the results store and the ``on_finish``
callbacks (a GitHub check run, ...) are called with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from library import artifacts, yamlio
from library.config import repo_root
from library.queue.remote import request_cancel, run_on_worker
from library.queue.store import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    QueuedRun,
    QueueStore,
    host_owner,
    owner_alive,
)
from library.results.record import record_run

log = logging.getLogger(__name__)
SERVICE_LANE = "service"
FIRE_LANE_PREFIX = "fire:"
RUN_LOG = "queue.log"
OnFinish = Callable[[QueuedRun], Awaitable[None]]


def _ci_run() -> list[str]:
    return [sys.executable, str(repo_root() / "ci" / "run")]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the executor's thread dies (Linux prctl)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pid_runs(pid: int, artifact_dir: str) -> bool:
    """Whether PID is alive and is the run writing ARTIFACT_DIR (not a recycled pid)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"ARTIFACT_DIR={artifact_dir}".encode() in environ.split(b"\0")


async def _end_group(pid: int, grace_s: float) -> None:
    """SIGTERM the process group, SIGKILL it after GRACE_S if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        await asyncio.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Executor:
    def __init__(
        self,
        store: QueueStore,
        artifacts_root: Path,
        *,
        lane: str = SERVICE_LANE,
        concurrency: int = 2,
        results_url: str | None = None,
        on_start: list[OnFinish] | None = None,
        on_finish: list[OnFinish] | None = None,
        poll_s: float = 0.5,
        grace_s: float = 30.0,
        command: list[str] | None = None,
        dask_scheduler: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.root = Path(artifacts_root).resolve()
        self.lane = lane
        self.concurrency = concurrency
        self.results_url = results_url
        self.on_start = list(on_start or [])
        self.on_finish = list(on_finish or [])
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.command = command or _ci_run()
        # Runs on the workers of this Dask scheduler (tcp://HOST:PORT) instead of locally.
        self.dask_scheduler = dask_scheduler
        self._dask_client = None
        self._dask_lock = asyncio.Lock()
        self.owner = host_owner()
        self.running: dict[int, asyncio.Task[None]] = {}
        # The run each of the `concurrency` slots holds (None: free) and how many runs each
        # slot has ended since the executor started (mobu's CI workers, for /summary).
        self.slots: list[int | None] = [None] * concurrency
        self.processed: list[int] = [0] * concurrency
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._cancelling: set[int] = set()
        self._enders: set[asyncio.Task[None]] = set()  # kept: a task nobody holds may be collected
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._done = asyncio.Condition()

    # -- life cycle

    async def recover(self) -> list[QueuedRun]:
        """Account for the runs a dead executor of this lane (or a dead ``trigger fire``) left:
        their processes ended, the runs queued again or failed. Returns them as they are now."""
        out: list[QueuedRun] = []
        prefix = self.lane if self.lane == SERVICE_LANE else FIRE_LANE_PREFIX
        for run in await asyncio.to_thread(self.store.orphans, prefix):
            if run.artifact_dir and run.pid is None:
                # Maybe still running on a Dask worker: it ends it when it sees this.

                request_cancel(run.artifact_dir)
            if run.pid and run.artifact_dir and _pid_runs(run.pid, run.artifact_dir):
                log.warning(
                    "run %d: its process %d outlived its executor; ending it", run.id, run.pid
                )
                await _end_group(run.pid, self.grace_s)
            note = (
                f"interrupted: its executor ({run.owner}) stopped while it ran (attempt "
                f"{run.attempts} of {run.max_attempts})"
            )
            if run.lane == SERVICE_LANE:
                run = await asyncio.to_thread(self.store.requeue, run.id, note)
            else:
                run = await asyncio.to_thread(
                    self.store.finish_interrupted, run.id, note + "; trigger fire ended"
                )
            log.warning("run %d: %s -> %s", run.id, note, run.state)
            out.append(run)
        if self.lane != SERVICE_LANE:
            for run in await asyncio.to_thread(self.store.list, QUEUED, None, 100_000):
                if run.lane.startswith(FIRE_LANE_PREFIX) and not owner_alive(
                    run.lane[len(FIRE_LANE_PREFIX) :]
                ):
                    run = await asyncio.to_thread(
                        self.store.fail_queued, run.id, "trigger fire ended before it ran"
                    )
                    out.append(run)
        return out

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name=f"executor-{self.lane}")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> list[int]:
        """Stop taking runs; the runs under way are ended (SIGTERM to their groups) and
        queued again for the next start. Returns their ids."""
        self._stopping = True
        self.wake()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        ids = list(self.running)
        if self.dask_scheduler:
            for run_id in ids:
                run = await asyncio.to_thread(self.store.get, run_id)
                if run.artifact_dir:
                    request_cancel(run.artifact_dir)
        for run_id in ids:
            proc = self._procs.get(run_id)
            if proc is not None and proc.returncode is None:
                await _end_group(proc.pid, self.grace_s)
        for task in list(self.running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._dask_client is not None:
            with contextlib.suppress(Exception):
                await self._dask_client.close()
            self._dask_client = None
        return ids

    async def run_until_done(self, ids: list[int]) -> list[QueuedRun]:
        """Run this lane until every run of IDS has ended (for ``trigger fire``)."""
        self.start()
        try:
            while True:
                runs = [await asyncio.to_thread(self.store.get, i) for i in ids]
                if all(r.state not in (QUEUED, RUNNING) for r in runs):
                    return runs
                async with self._done:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._done.wait(), self.poll_s * 4)
        finally:
            await self.stop()

    # -- the loop

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._fill()
                await self._check_cancels()
            except Exception:  # noqa: BLE001 - a store hiccup must not end the executor
                log.exception("executor: queue store error (retrying)")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _fill(self) -> None:
        while not self._stopping and len(self.running) < self.concurrency:
            began = time.perf_counter()
            run = await asyncio.to_thread(self.store.claim, self.lane, self.owner, self.root)
            if run is None:
                return
            claim_ms = (time.perf_counter() - began) * 1000
            self.slots[self.slots.index(None)] = run.id
            task = asyncio.create_task(self._run(run, claim_ms), name=f"run-{run.id}")
            self.running[run.id] = task

    async def _check_cancels(self) -> None:
        wanted = await asyncio.to_thread(self.store.cancel_requested, list(self.running))
        for run_id in wanted:
            if run_id in self._cancelling:
                continue
            self._cancelling.add(run_id)
            if self.dask_scheduler:
                run = await asyncio.to_thread(self.store.get, run_id)
                if run.artifact_dir:
                    request_cancel(run.artifact_dir)
                continue
            proc = self._procs.get(run_id)
            if proc is not None and proc.returncode is None:
                log.info("run %d: cancelled; ending its process group", run_id)
                task = asyncio.create_task(_end_group(proc.pid, self.grace_s))
                self._enders.add(task)
                task.add_done_callback(self._enders.discard)

    def _prepare(self, run: QueuedRun) -> tuple[Path, list[str], dict[str, str]]:
        run_dir = Path(run.artifact_dir or self.root / f"{run.id:06d}")
        run_dir.mkdir(parents=True, exist_ok=True)
        if run.vars:
            # Data, as /var values are: ci/run reads it as YAML data, never as a template.
            (run_dir / artifacts.VARIABLE_OVERRIDES).write_text(
                yamlio.dumps(run.vars), encoding="utf-8"
            )
        trigger = {
            "run_id": run.id,
            "event_id": run.event_id,
            "event_type": run.event_type,
            "rule": run.rule,
            "project": run.project,
            "step": run.step,
            "presets": run.presets,
            "attempt": run.attempts,
            "data": run.data,
        }
        for key in ("git_ref", "git_sha", "repository"):
            if key in run.data:
                trigger[key] = run.data[key]
        (run_dir / "trigger.json").write_text(
            json.dumps(trigger, indent=2, default=str) + "\n", encoding="utf-8"
        )
        argv = [*self.command, run.project, run.step]
        for preset in run.presets:
            argv += ["--preset", preset]
        env = {k: v for k, v in os.environ.items() if k != "BOSUN_TRIGGER"}
        env.update({"ARTIFACT_DIR": str(run_dir), "CI": "1", "BOSUN_QUEUE_RUN": str(run.id)})
        if self.results_url:
            env["BOSUN_RESULTS_STORE"] = self.results_url
        return run_dir, argv, env

    async def _run(self, run: QueuedRun, claim_ms: float = 0.0) -> None:
        code: int | None = None
        error: str | None = None
        interrupted = False
        ended = False  # reached its final state (an interrupted run is queued again)
        timing: dict[str, float] = {"claim_ms": round(claim_ms, 3)}
        mark = time.perf_counter()

        def lap(name: str, scale: float = 1000.0) -> None:
            nonlocal mark
            now = time.perf_counter()
            timing[name] = round((now - mark) * scale, 3)
            mark = now

        try:
            run_dir, argv, env = await asyncio.to_thread(self._prepare, run)
            lap("prepare_ms")
            if self.dask_scheduler:
                code = await self._run_on_dask(run, run_dir, argv, env, lap)
                interrupted = self._stopping and run.id not in self._cancelling
                raise _Done
            with open(run_dir / RUN_LOG, "ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            self._procs[run.id] = proc
            await asyncio.to_thread(self.store.set_pid, run.id, proc.pid)
            lap("spawn_ms")
            await self._callbacks(self.on_start, run.id)
            lap("on_start_ms")
            log.info(
                "run %d: started %s %s (pid %d) in %s",
                run.id,
                run.project,
                run.step,
                proc.pid,
                run_dir,
            )
            code = await proc.wait()
            lap("process_s", 1.0)
            interrupted = self._stopping and run.id not in self._cancelling
        except _Done:
            pass
        except OSError as exc:
            error = f"could not start the run: {exc}"
        except Exception as exc:  # noqa: BLE001 - a Dask failure fails the run, not the executor
            if not self.dask_scheduler:
                raise
            error = f"the Dask worker failed: {type(exc).__name__}: {exc}"
        finally:
            self._procs.pop(run.id, None)
        try:
            if interrupted:
                note = f"interrupted: the executor stopped while it ran (attempt {run.attempts})"
                await asyncio.to_thread(self.store.requeue, run.id, note)
                await self._record(run)
                return
            if run.id in self._cancelling:
                state = CANCELLED
            elif code == 0:
                state = SUCCEEDED
            else:
                state = FAILED
                error = error or f"ci/run exited {code}"
            await self._record(run)
            lap("record_ms")
            timing["overhead_ms"] = round(sum(v for k, v in timing.items() if k.endswith("_ms")), 3)
            await asyncio.to_thread(self.store.finish, run.id, state, code, error, timing)
            ended = True
            await self._callbacks(self.on_finish, run.id)
            log.info("run %d: %s (exit %s)", run.id, state, code)
        finally:
            if run.id in self.slots:
                slot = self.slots.index(run.id)
                self.slots[slot] = None
                self.processed[slot] += ended
            self.running.pop(run.id, None)
            self._cancelling.discard(run.id)
            self.wake()
            async with self._done:
                self._done.notify_all()

    async def _client(self) -> Any:
        async with self._dask_lock:  # two runs starting at once share one client
            if self._dask_client is None:
                from distributed import Client

                self._dask_client = await Client(
                    self.dask_scheduler, asynchronous=True, set_as_default=False
                )
        return self._dask_client

    async def _run_on_dask(
        self,
        run: QueuedRun,
        run_dir: Path,
        argv: list[str],
        env: dict[str, str],
        lap: Callable[..., None],
    ) -> int:
        client = await self._client()
        future = client.submit(
            run_on_worker,
            argv,
            env,
            str(run_dir),
            RUN_LOG,
            grace_s=self.grace_s,
            key=f"bosun-run-{run.id}-{run.attempts}",
            pure=False,
        )
        await asyncio.to_thread(self.store.set_pid, run.id, None)
        lap("spawn_ms")
        await self._callbacks(self.on_start, run.id)
        lap("on_start_ms")
        log.info(
            "run %d: submitted %s %s to Dask (%s) in %s",
            run.id,
            run.project,
            run.step,
            self.dask_scheduler,
            run_dir,
        )
        code = int(await future)
        lap("process_s", 1.0)
        return code

    async def _callbacks(self, callbacks: list[OnFinish], run_id: int) -> None:
        for callback in callbacks:
            try:
                await callback(await asyncio.to_thread(self.store.get, run_id))
            except Exception:  # noqa: BLE001 - a reporter's failure is logged, not fatal
                log.exception("run %d: callback %s failed", run_id, callback)

    async def _record(self, run: QueuedRun) -> None:
        """Record the run's results unless ci/run did (it records into the same store after
        its report: FINISHED written, no report error); an interrupted run is recorded here."""
        if not run.artifact_dir or not Path(run.artifact_dir).is_dir():
            return
        root = Path(run.artifact_dir)
        if (root / "FINISHED").is_file():
            try:
                info = json.loads((root / "run.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = None
            if isinstance(info, dict) and "report_error" in info and not info["report_error"]:
                return

        try:
            await asyncio.to_thread(record_run, run.artifact_dir, self.results_url)
        except Exception as exc:  # noqa: BLE001 - the run's state is kept even if this fails
            log.error("run %d: results not recorded: %s", run.id, exc)


class _Done(Exception):
    """The run ended on Dask: skip the local process's part."""


def fire_lane() -> str:
    return FIRE_LANE_PREFIX + host_owner()


def summary(runs: list[QueuedRun]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.state] = counts.get(run.state, 0) + 1
    return counts
