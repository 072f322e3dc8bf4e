"""One flock of the service: its monkeys run until the flock is stopped, paused or replaced.

The monkeys are the engine's (`library.flock.monkey.Monkey`), started in the flock's batches
by the engine's `start_in_batches` and stopped by its `stop_tasks` (labs deleted within their
delete_timeout). Each monkey gets its own counters (`MonkeyStats`, the engine's FlockStats
shape) so that the API shows mobu's per-monkey success and failure counts; the flock's are
their sums.

Pause has two modes. ``release``: the monkeys' tasks are stopped (labs deleted) and started
again on resume. ``keep``: each monkey finishes its execution under way and waits at the
engine's checkpoint (before its next execution), its lab kept, until resume; its schedule
then starts again (a pause is not lateness to catch up).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
from collections import deque
from typing import Any

import orjson

from library import env
from library.flock.businesses import REGISTRY, canonical
from library.flock.engine import shutdown_bound, start_in_batches, stop_tasks
from library.flock.models import FlockConfig, User
from library.flock.monkey import CONTINUE, ERROR, RESTART, RESUMED, STOPPED, FlockStats, Monkey
from library.notebooks.source import refresh_checkout
from library.service.errors import MonkeyNotFound
from library.service.monkeylog import CURRENT, MonkeyLog
from library.service.runtime import Runtime

log = logging.getLogger(__name__)
RECENT_PER_MONKEY = 32  # recent durations kept per monkey (the engine keeps 2,000 per flock)
NOTEBOOK_BUSINESSES = ("NotebookRunnerCounting", "NotebookRunnerList", "NotebookRunnerInfinite")


class MonkeyStats(FlockStats):
    """One monkey's counters, in the shape the engine's Monkey updates."""

    def __init__(self, flock: FlockConfig) -> None:
        super().__init__(flock)
        self.recent_ms = deque(maxlen=RECENT_PER_MONKEY)
        self.recent_lag_ms = deque(maxlen=RECENT_PER_MONKEY)


class ServiceFlock:
    def __init__(
        self, config: FlockConfig, runtime: Runtime, *, source: str, created_by: str
    ) -> None:
        self.config = config
        self.name = config.name
        self.runtime = runtime
        self.source = source  # "autostart" (from config) or "api"
        self.created_by = created_by
        self.start_time: dt.datetime | None = None
        self.paused = False
        self.pause_mode = runtime.pause_labs
        self.stopping = False
        self.users: dict[str, User] = {u.username: u for u in config.monkeys()}
        self.stats: dict[str, MonkeyStats] = {}
        self.monkeys: dict[str, Monkey] = {}
        self.logs: dict[str, MonkeyLog] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._starter: asyncio.Task[None] | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._refresh: set[str] = set()
        self._users_data: dict[str, dict[str, Any]] = {}
        self._json_cache: dict[str, tuple[str, str]] = {}
        # Whether the monkeys' JSON shows mobu's per-business fields (image, notebook,
        # running_code, running_query): decided once, so a flock of EmptyLoop or HTTPLoop
        # monkeys pays nothing per monkey for them.
        self._business_data = REGISTRY[canonical(config.business.type)].data
        for name in self.users:
            stats = self.stats[name] = MonkeyStats(config)
            self.monkeys[name] = Monkey(
                config, self.users[name], runtime.recorder, runtime.shared, stats
            )
            self.logs[name] = runtime.logs[(self.name, name)] = MonkeyLog(runtime.log_lines)

    # -- running

    def start(self, paused: bool = False) -> None:
        """Start the monkeys in the flock's batches (in the background: a start_batch_wait
        may make this last long); start_time is set once every monkey has started. A flock
        started `paused` (labs released) starts its monkeys when resumed."""
        self.runtime.shared.monkeys += len(self.users)
        if paused:
            self.paused, self.pause_mode = True, "release"
            for name in self.users:
                self.logs[name].add("paused (restored paused after a restart)")
            return
        self._starter = asyncio.create_task(self._start_all(), name=f"start-{self.name}")

    async def _start_all(self) -> None:
        await start_in_batches(
            self.config,
            list(self.users.values()),
            lambda user: self._start_monkey(user.username),
            lambda: self.stopping or self.paused,
        )
        if not self.stopping and not self.paused and self.start_time is None:
            self.start_time = dt.datetime.now(dt.UTC)
            # The flock's long-lived objects (monkeys, businesses, sessions) out of the
            # collector's reach: a full collection of a service holding 10,000 monkeys
            # otherwise stalls the loop the API shares for up to a second.
            gc.freeze()

    def _start_monkey(self, name: str) -> None:
        self.logs[name].add("starting")
        context = self.runtime.context.copy()
        context.run(CURRENT.set, self.logs[name])
        self.tasks[name] = asyncio.create_task(
            self.monkeys[name].run(), name=f"{self.name}/{name}", context=context
        )

    async def stop(self) -> int:
        """Stop every monkey (labs deleted); returns how many had to be abandoned."""
        self.stopping = True
        self._resumed.set()
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        abandoned = await stop_tasks(list(self.tasks.values()), shutdown_bound([self.config]))
        for name, monkey in self.monkeys.items():
            monkey.state = STOPPED
            self.logs[name].add("stopped")
        self.runtime.shared.monkeys -= len(self.users)
        for name in self.users:
            self.runtime.logs.pop((self.name, name), None)
        return abandoned

    async def pause(self, mode: str | None = None) -> None:
        if self.paused or self.stopping:
            return
        self.paused = True
        self.pause_mode = mode or self.runtime.pause_labs
        for name in self.users:
            self.logs[name].add(
                f"paused (labs {'kept' if self.pause_mode == 'keep' else 'released'})"
            )
        if self.pause_mode == "keep":
            self._resumed.clear()
            self._set_checkpoints()
            return
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
        await stop_tasks(list(self.tasks.values()), shutdown_bound([self.config]))
        self.tasks.clear()

    def resume(self) -> None:
        if not self.paused or self.stopping:
            return
        self.paused = False
        for name in self.users:
            self.logs[name].add("resumed")
        if self.pause_mode == "keep":
            self._resumed.set()
            self._set_checkpoints()
            # Monkeys that had not started when the flock was paused start now.
            if (
                self._starter is not None
                and self._starter.done()
                and len(self.tasks) < len(self.users)
            ):
                self._starter = asyncio.create_task(self._start_missing())
            return
        self._starter = asyncio.create_task(self._start_missing(), name=f"start-{self.name}")

    async def _start_missing(self) -> None:
        missing = [u for n, u in self.users.items() if n not in self.tasks]
        await start_in_batches(
            self.config,
            missing,
            lambda user: self._start_monkey(user.username),
            lambda: self.stopping or self.paused,
        )
        if not self.stopping and not self.paused and self.start_time is None:
            self.start_time = dt.datetime.now(dt.UTC)

    async def refresh(self) -> None:
        """mobu's refresh: notebook runners re-read their repository (fetched again) and
        start a fresh business after their execution under way; other businesses only show
        `refreshing` until their next execution, as in mobu."""
        options = self.config.business.parsed_options
        repo = getattr(options, "repo_url", None)
        if self.config.business.type in NOTEBOOK_BUSINESSES and repo:
            await asyncio.to_thread(
                refresh_checkout,
                repo,
                getattr(options, "repo_ref", None),
                env.artifact_dir() / ".repos",
            )
        self._refresh.update(self.users)
        for name in self.users:
            self.logs[name].add("refresh requested")
        self._set_checkpoints()

    def _set_checkpoints(self) -> None:
        # Only while something is asked of the monkeys: otherwise their loop pays nothing.
        wanted = self._checkpoint if (self._refresh or not self._resumed.is_set()) else None
        for stats in self.stats.values():
            stats.checkpoint = wanted

    async def _checkpoint(self, monkey: Monkey) -> int:
        """Before each execution, while a pause or a refresh is asked (engine protocol)."""
        name = monkey.user.username
        step = CONTINUE
        if not self._resumed.is_set():
            await self._resumed.wait()
            step = RESUMED
        if name in self._refresh:
            self._refresh.discard(name)
            if not self._refresh and self._resumed.is_set():
                self._set_checkpoints()
            if self.config.business.type in NOTEBOOK_BUSINESSES:
                self.logs[name].add("refreshing: a fresh business re-reads the repository")
                return RESTART
        return step

    # -- what the API shows

    def monkey_state(self, name: str) -> str:
        if self.stopping:
            task = self.tasks.get(name)
            return "STOPPING" if task is not None and not task.done() else "FINISHED"
        if self.paused:
            return "PAUSED"
        task = self.tasks.get(name)
        if task is None:
            return "IDLE"  # mobu's state of a monkey not started yet
        state = self.monkeys[name].state
        if state == ERROR:
            return "ERROR"
        if state == STOPPED or task.done():
            return "FINISHED"
        return "RUNNING"

    def get_monkey(self, name: str) -> dict[str, Any]:
        if name not in self.users:
            raise MonkeyNotFound(name)
        return self._monkey_data(name)

    def monkey_log(self, name: str) -> str:
        if name not in self.users:
            raise MonkeyNotFound(name)
        return self.logs[name].text()

    def list_monkeys(self) -> list[str]:
        return sorted(self.users)

    def _user_data(self, name: str) -> dict[str, Any]:
        """mobu's AuthenticatedUser, without the token; made once (it never changes)."""
        cached = self._users_data.get(name)
        if cached is not None:
            return cached
        user = self.users[name]
        data: dict[str, Any] = {"username": user.username}
        if user.uidnumber is not None:
            data["uidnumber"] = user.uidnumber
        if user.effective_gid is not None:
            data["gidnumber"] = user.effective_gid
        data["groups"] = [g.model_dump() for g in user.groups]
        data["scopes"] = list(self.config.scopes)
        data["token"] = "***"
        self._users_data[name] = data
        return data

    def _monkey_data(self, name: str) -> dict[str, Any]:
        stats = self.stats[name]
        business = {
            "name": self.config.business.type,
            "failure_count": stats.failures,
            "success_count": stats.successes,
            "refreshing": name in self._refresh,
        }
        if self._business_data:
            # What the business is doing now (mobu's BusinessData subclasses); between two
            # businesses of a monkey (a restart, a refresh) there is nothing to show.
            running = self.monkeys[name].business
            if running is not None:
                business.update(running.monkey_data())
        return {
            "name": name,
            "state": self.monkey_state(name),
            "user": self._user_data(name),
            "business": business,
        }

    def dump(self) -> dict[str, Any]:
        """mobu's FlockData: name, the config as given, every monkey."""
        return {
            "name": self.name,
            "config": self.config.model_dump(mode="json", exclude_unset=True, exclude_none=True),
            "monkeys": [self._monkey_data(name) for name in self.users],
        }

    def dump_json(self) -> bytes:
        """`dump()` as compact JSON with sorted keys (orjson's OPT_SORT_KEYS, byte for byte),
        written from text: what a monkey's part never changes (its name, its user) is rendered
        once. The API answers on the loop the monkeys run on, and a flock of 10,000 monkeys
        built as dicts, rendered, then freed took 33 ms of it (p50, every monkey paused,
        tests/bench/bench_service.py); this way 23. A business that shows per-monkey data
        (mobu's image, running_code...) is rendered from `dump()`."""
        if self._business_data:
            return orjson.dumps(self.dump(), option=orjson.OPT_SORT_KEYS)
        config = self.config.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        business = _json(self.config.business.type)
        refresh, stats, state = self._refresh, self.stats, self.monkey_state
        monkeys = []
        for name in self.users:
            named, user = self._json_parts(name)
            counts = stats[name]
            monkeys.append(
                f'{{"business":{{"failure_count":{counts.failures},"name":{business},'
                f'"refreshing":{"true" if name in refresh else "false"},'
                f'"success_count":{counts.successes}}},"name":{named},'
                f'"state":"{state(name)}","user":{user}}}'
            )
        return (
            f'{{"config":{_json(config)},"monkeys":[{",".join(monkeys)}],'
            f'"name":{_json(self.name)}}}'
        ).encode()

    def _json_parts(self, name: str) -> tuple[str, str]:
        """A monkey's name and user as JSON, made once."""
        parts = self._json_cache.get(name)
        if parts is None:
            parts = self._json_cache[name] = (_json(name), _json(self._user_data(name)))
        return parts

    def summary(self) -> dict[str, Any]:
        """mobu's FlockSummary; ``"paused": true`` added while paused."""
        successes = failures = 0
        for stats in self.stats.values():
            successes += stats.successes
            failures += stats.failures
        out: dict[str, Any] = {
            "name": self.name,
            "business": self.config.business.type,
            "start_time": None if self.start_time is None else self.start_time.isoformat(),
            "monkey_count": len(self.users),
            "success_count": successes,
            "failure_count": failures,
        }
        if self.paused:
            out["paused"] = True
        return out

    def state(self) -> str:
        if self.stopping:
            return "stopping"
        if self.paused:
            return "paused"
        return "running" if self.start_time is not None else "starting"


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
