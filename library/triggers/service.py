"""The triggers on the standing service: the queue's executor on the service's loop, the
dispatcher for events and webhooks, the GitHub apps (refresh, notebooks as CI).

`TriggerService` plugs into the service's seams as its other parts do: the app mounts its
`router()`, the server calls `start()` after the flocks boot and `aclose()` before they stop.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from library.queue.executor import SERVICE_LANE, Executor
from library.queue.store import QueueStore
from library.results.store import default_url
from library.service.flock import NOTEBOOK_BUSINESSES
from library.triggers import rules as rules_mod
from library.triggers.checks import CheckReporter
from library.triggers.dispatch import Accepted, Dispatcher
from library.triggers.events import Event
from library.triggers.github import read_secret

if TYPE_CHECKING:
    from fastapi import APIRouter

    from library.service.auth import Authenticator
    from library.service.manager import FlockManager
    from library.service.settings import ServiceSettings

log = logging.getLogger(__name__)


def _norm_url(url: str) -> str:
    url = url.strip().rstrip("/")
    url = url.removesuffix(".git")
    return url.lower()


class TriggerService:
    def __init__(
        self,
        settings: ServiceSettings,
        manager: FlockManager | None,
        auth: Authenticator | None = None,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.auth = auth
        cfg = settings.triggers
        self.cfg = cfg
        self.rules = rules_mod.load(cfg.rules) if cfg.rules is not None else None
        self.secret: bytes | None = None
        if cfg.github.secret_file is not None:
            self.secret = read_secret(cfg.github.secret_file, "service.triggers.github.secret_file")
        self.queue = QueueStore(cfg.queue_store or Path(settings.state_dir) / "queue.sqlite")
        self.results_url = cfg.results_store or default_url()
        self.executor = Executor(
            self.queue,
            cfg.artifacts_root or Path(settings.state_dir) / "runs",
            lane=SERVICE_LANE,
            concurrency=cfg.concurrency,
            results_url=self.results_url,
            dask_scheduler=cfg.dask_scheduler,
        )
        client = cfg.github.check_runs()
        if client is not None:
            reporter = CheckReporter(client, self.queue)
            self.executor.on_start.append(reporter.on_start)
            self.executor.on_finish.append(reporter.on_finish)
        self.dispatcher = Dispatcher(
            self.rules, self.queue, SERVICE_LANE, self.executor.wake, cfg.max_attempts
        )
        self.recovered: list[dict[str, Any]] = []

    # -- life cycle

    async def start(self) -> None:
        recovered = await self.executor.recover()
        self.recovered = [{"id": r.id, "state": r.state, "notes": r.notes} for r in recovered]
        if recovered:
            log.warning(
                "queue: %d run(s) interrupted by the last stop accounted for: %s",
                len(recovered),
                ", ".join(f"{r.id} {r.state}" for r in recovered),
            )
        self.executor.start()

    async def aclose(self) -> None:
        stopped = await self.executor.stop()
        if stopped:
            log.warning(
                "queue: run(s) %s ended by the stop, queued again", ", ".join(map(str, stopped))
            )
        self.queue.close()

    # -- events

    async def accept(self, event: Event, source: str) -> Accepted:
        return await asyncio.to_thread(self.dispatcher.accept, event, source)

    async def refresh_for_push(self, event: Event, who: str = "github") -> list[str]:
        """mobu's refresh app: the notebook-runner flocks whose repository and branch the
        push names are refreshed (their notebooks fetched again); the others are left."""
        if self.manager is None or not self.cfg.github.refresh:
            return []
        ref = event.get("ref")
        if not isinstance(ref, str) or not ref.startswith("refs/heads/"):
            return []
        branch = ref.removeprefix("refs/heads/")
        repo = event.get("repository")
        urls = set()
        if isinstance(repo, dict):
            for key in ("clone_url", "html_url", "ssh_url", "git_url", "url", "svn_url"):
                if isinstance(repo.get(key), str):
                    urls.add(_norm_url(repo[key]))
        refreshed = []
        for name, flock in list(self.manager.flocks.items()):
            if flock.config.business.type not in NOTEBOOK_BUSINESSES:
                continue
            options = flock.config.business.parsed_options
            repo_url = getattr(options, "repo_url", None)
            if not repo_url or _norm_url(repo_url) not in urls:
                continue
            if getattr(options, "repo_ref", None) != branch:
                continue
            try:
                await self.manager.refresh_flock(name, who)
            except Exception as exc:  # noqa: BLE001 - one flock's failure spares the others
                log.error("push to %s: refreshing flock %s failed: %s", branch, name, exc)
                continue
            refreshed.append(name)
        return refreshed

    def router(self) -> APIRouter:
        from library.triggers.api import make_router

        return make_router(self)

    @property
    def exempt_paths(self) -> list[str]:
        """Paths whose routes check their callers themselves (a signature, a scope)."""
        prefix = self.settings.prefix
        return [f"{prefix}/github/webhook", f"{prefix}/events", f"{prefix}/runs"]
