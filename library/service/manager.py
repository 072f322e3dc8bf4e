"""The flock manager: every flock of the service, by name (mobu's ``services/manager.py``).

Flocks come from the config (``autostart``) and from the API; those from the API, and which
flocks are paused, are saved in the store on every change and come back after a restart.
Another part of the service (metrics, reports, alerts) reads `states()` and `summaries()`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from library.flock.businesses import main_operation, runnable
from library.flock.limits import MAX_MONKEYS_PER_PROCESS
from library.flock.models import FlockConfig, parse_flocks
from library.platform import Platform, check_username
from library.service.errors import FlockNotFound, FlockRefused
from library.service.flock import ServiceFlock
from library.service.runtime import Runtime
from library.service.store import FlockStore

log = logging.getLogger(__name__)
audit = logging.getLogger("library.service.audit")


class FlockManager:
    def __init__(self, runtime: Runtime, store: FlockStore | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.flocks: dict[str, ServiceFlock] = {}
        # Builds each flock; the Dask placement (library/service/dask.py) replaces it.
        self.make_flock = ServiceFlock
        # One change at a time: a replace (stop, then start) is never interleaved with another.
        self._lock = asyncio.Lock()
        self._booting = False

    # -- queries

    def list_flocks(self) -> list[str]:
        return sorted(self.flocks)

    def get_flock(self, name: str) -> ServiceFlock:
        flock = self.flocks.get(name)
        if flock is None:
            raise FlockNotFound(name)
        return flock

    def summaries(self) -> list[dict[str, Any]]:
        return [f.summary() for _, f in sorted(self.flocks.items())]

    def states(self) -> dict[str, str]:
        """Each flock's state: starting, running, paused, stopping."""
        return {name: f.state() for name, f in sorted(self.flocks.items())}

    # -- changes (each logged with who asked)

    def check_runnable(self, config: FlockConfig) -> None:
        """Refuse, before anything stops or starts, a flock that cannot run here."""
        why = runnable(config.business.type)
        if why:
            raise FlockRefused(why, ["body", "business", "type"])
        self._check_size(config)
        for user in config.monkeys():
            try:
                check_username(user.username)
            except ValueError as exc:
                raise FlockRefused(str(exc), ["body", "users"]) from None
        data = self.runtime.shared.endpoints.get("platform")
        platform = Platform.from_data(data) if data else Platform()
        needs = main_operation(config.business.type)
        field = {"tap_query": "tap_url", "sia_query": "sia_url"}.get(needs)
        if needs in ("execute_code", "notebook"):
            field = "hub_url"
            if platform.tokens is None:
                raise FlockRefused(
                    f"{config.business.type} needs hub tokens: the service has no token file",
                    ["body", "business", "type"],
                )
        if field and not getattr(platform, field, None):
            raise FlockRefused(
                f"{config.business.type} needs the platform's {field}, which the service "
                "was not given",
                ["body", "business", "type"],
            )

    def _check_size(self, config: FlockConfig) -> None:
        """The monkeys this process would run, the flock replaced by its new size, stay within
        what one process is given (library/flock/limits.py): a PUT cannot exhaust the
        service's memory. Flocks placed on Dask run elsewhere and are not counted."""

        def local(flock: ServiceFlock) -> bool:
            return type(flock) is ServiceFlock

        here = sum(
            len(f.users) for name, f in self.flocks.items() if name != config.name and local(f)
        )
        if self.make_flock is ServiceFlock:
            here += config.count
        if here > MAX_MONKEYS_PER_PROCESS:
            raise FlockRefused(
                f"{here:,} monkeys would run in this service, above the limit of "
                f"{MAX_MONKEYS_PER_PROCESS:,} for one process: lower count, or place the flock "
                "on Dask (service.dask)",
                ["body", "count"],
            )

    async def start_flock(
        self,
        config: FlockConfig,
        *,
        source: str = "api",
        who: str = "config",
        paused: bool = False,
    ) -> ServiceFlock:
        """Start a flock, replacing (stopping first) one of the same name, as mobu does.
        `paused`: listed but not started (a flock paused before a restart), until resumed."""
        self.check_runnable(config)
        async with self._lock:
            old = self.flocks.pop(config.name, None)
            if old is not None:
                audit.info("%s: replacing flock %s", who, config.name)
                await old.stop()
            flock = self.make_flock(config, self.runtime, source=source, created_by=who)
            self.flocks[config.name] = flock
            flock.start(paused=paused)
            audit.info(
                "%s: started flock %s (%d x %s, from %s)",
                who,
                config.name,
                config.count,
                config.business.type,
                source,
            )
            self._save()
            return flock

    async def stop_flock(self, name: str, who: str) -> None:
        async with self._lock:
            flock = self.get_flock(name)
            del self.flocks[name]
            self._save()
            audit.info("%s: deleting flock %s", who, name)
            abandoned = await flock.stop()
            if abandoned:
                log.warning("flock %s: %d monkeys abandoned while stopping", name, abandoned)

    async def refresh_flock(self, name: str, who: str) -> None:
        flock = self.get_flock(name)
        audit.info("%s: refreshing flock %s", who, name)
        await flock.refresh()

    async def pause_flock(self, name: str, who: str, labs: str | None = None) -> ServiceFlock:
        async with self._lock:
            flock = self.get_flock(name)
            audit.info("%s: pausing flock %s (labs %s)", who, name, labs or self.runtime.pause_labs)
            await flock.pause(labs)
            self._save()
            return flock

    async def resume_flock(self, name: str, who: str) -> ServiceFlock:
        async with self._lock:
            flock = self.get_flock(name)
            audit.info("%s: resuming flock %s", who, name)
            flock.resume()
            self._save()
            return flock

    # -- boot and shutdown

    async def boot(self, autostart: list[FlockConfig]) -> None:
        """Start the config's flocks, then those saved from the API (which replace a config
        flock of the same name, being the later word), then pause what was paused."""
        saved = self.store.load() if self.store is not None else {"flocks": {}, "paused": []}
        # The store is written once at the end: a crash while booting leaves it as it was.
        self._booting = True
        try:
            await self._boot(autostart, saved)
        finally:
            self._booting = False
        self._save()

    async def _boot(self, autostart: list[FlockConfig], saved: dict[str, Any]) -> None:
        # A flock paused before the restart comes back paused without starting (no lab is
        # spawned only to be deleted).
        paused = set(saved["paused"])
        for config in autostart:
            if config.name not in saved["flocks"]:
                await self.start_flock(
                    config, source="autostart", who="config", paused=config.name in paused
                )
        for name, item in saved["flocks"].items():
            try:
                (config,) = parse_flocks([item["config"]], f"saved flock {name!r}")
                await self.start_flock(
                    config, source="api", who=item.get("created_by", "?"), paused=name in paused
                )
            except Exception as exc:  # noqa: BLE001 - one bad saved flock must not stop the rest
                log.error("saved flock %s not restored: %s", name, exc)

    async def aclose(self) -> None:
        """Stop every flock at once (their labs deleted in parallel); the store is kept."""
        flocks, self.flocks = list(self.flocks.values()), {}
        await asyncio.gather(*(f.stop() for f in flocks), return_exceptions=True)

    def _save(self) -> None:
        if self.store is None or self._booting:
            return
        api = {
            name: {
                "config": f.config.model_dump(mode="json", exclude_unset=True, exclude_none=True),
                "created_by": f.created_by,
            }
            for name, f in self.flocks.items()
            if f.source == "api"
        }
        paused = [name for name, f in self.flocks.items() if f.paused]
        self.store.save(api, paused)
