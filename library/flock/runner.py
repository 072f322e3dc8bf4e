"""A whole `scale run`: flocks in, artifacts out (flocks.yaml, events, health, summary)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from library import platform as plat
from library import redact, yamlio
from library.artifacts import Operation, ScaleRunDir
from library.errors import UserError, one_line
from library.events import encode_spools
from library.flock import gcpolicy, limits
from library.flock import summary as summ
from library.flock.businesses import main_operation, runnable
from library.flock.distributed import run_distributed
from library.flock.engine import RunSettings, run_flocks
from library.flock.models import FlockConfig, dump_flocks, load_flocks, parse_flocks
from library.flock.options import parse_duration
from library.platform import check_username
from library.platform_tokens import StaticProvider
from library.run import stop_request, watching_stop

log = logging.getLogger(__name__)


def _override(
    flocks: list[FlockConfig],
    count: int | None,
    options: list[str],
    source: str,
    fields: dict[str, Any] | None = None,
) -> list[FlockConfig]:
    fields = {k: v for k, v in (fields or {}).items() if v is not None}
    if count is None and not options and not fields:
        return flocks
    data = dump_flocks(flocks)
    for flock in data:
        # Flock fields given on the command line (--start-batch-size...), validated below
        # exactly like the file's own values.
        flock.update(fields)
    for item in options:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--option {item!r}: expected NAME=VALUE, e.g. idle_time=5s")
        for flock in data:
            flock["business"].setdefault("options", {})[name.strip()] = yamlio.loads(
                value, f"--option {item!r}"
            )
    if count is not None:
        for flock in data:
            if "users" in flock:
                raise UserError(
                    f"--count {count}: flock {flock['name']!r} lists its users; "
                    "use user_spec to size it"
                )
            flock["count"] = count
    return parse_flocks(data, f"{source} (with overrides)")


def _check_usernames(flocks: list[FlockConfig], source: str) -> None:
    """Every monkey's user name is a valid bot user name of the platform (one URL segment):
    a name like ``bot-x/../alice`` is refused before any URL is built with it."""
    for flock in flocks:
        for user in flock.monkeys():
            try:
                check_username(user.username)
            except ValueError as exc:
                raise UserError(f"{source}: flock {flock.name!r}: {exc}") from None


@dataclass
class ScaleRun:
    flocks: list[FlockConfig]
    duration: float | None
    endpoints: dict[str, Any]

    @classmethod
    def prepare(
        cls,
        path: Path,
        *,
        duration: str | float | None = None,
        count: int | None = None,
        options: list[str] | None = None,
        endpoints: dict[str, Any] | None = None,
        start_batch_size: int | None = None,
        start_batch_wait: str | None = None,
    ) -> ScaleRun:
        fields = {"start_batch_size": start_batch_size, "start_batch_wait": start_batch_wait}
        flocks = _override(load_flocks(path), count, options or [], str(path), fields)
        seconds = None
        if duration is not None:
            try:
                seconds = parse_duration(duration)
            except ValueError as exc:
                raise UserError(f"--duration: {exc}") from None
        _check_usernames(flocks, str(path))

        for flock in flocks:  # validated as mobu does, but not runnable here: say so up front
            why = runnable(flock.business.type)
            if why:
                raise UserError(f"{path}: flock {flock.name!r}: {why}")
        return cls(flocks, seconds, {k: v for k, v in (endpoints or {}).items() if v})

    def _resolve_endpoints(self) -> None:
        """Resolve the platform once, up front: a missing service or token is one clear error
        before any monkey starts, not a failure per monkey, and every shard gets the same
        answer (the resolved platform travels as data in ``endpoints["platform"]``)."""
        if "platform" in self.endpoints:
            return
        resolved = plat.resolve(
            hub_url=self.endpoints.get("hub_url"),
            tap_url=self.endpoints.get("tap_url"),
            sia_url=self.endpoints.get("sia_url"),
            discovery_url=self.endpoints.get("discovery_url"),
            token_file=self.endpoints.get("token_file"),
        )
        needs = {main_operation(f.business.type) for f in self.flocks}
        # TAP and SIA come from service discovery by dataset when the platform has it.
        if "tap_query" in needs and not resolved.discovery_url:
            resolved.require("tap_url")
        if "sia_query" in needs and not resolved.discovery_url:
            resolved.require("sia_url")
        if "muster" in needs:
            resolved.require("discovery_url")
        if needs & {Operation.EXECUTE_CODE, Operation.NOTEBOOK}:
            resolved.require("hub_url")
            if resolved.tokens is None:
                raise UserError(
                    "no token for the hub: pass --token-file (an admin token, or 'user: token' "
                    "lines) or set $BOSUN_TOKEN_FILE"
                )
        if isinstance(resolved.tokens, plat.StaticTokens):
            self._check_static_tokens(resolved.tokens)
        self.endpoints = {"platform": resolved.to_data()}

    def _check_static_tokens(self, source: plat.StaticTokens) -> None:
        """Every monkey's user has a line in the token file (named before anything starts)."""
        have = set(StaticProvider(source).users())
        for flock in self.flocks:
            for user in flock.monkeys():
                if user.username not in have:
                    raise UserError(
                        f"flock {flock.name!r}: no token for user {user.username} in the token "
                        f"file {source.path}: add a line '{user.username}: TOKEN'"
                    )

    def execute(
        self,
        out_dir: Path,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        live: bool = True,
        min_success_pct: float = 95.0,
        webhook_url: str | None = None,
    ) -> dict[str, Any]:
        # Whoever calls (the CLI, a project step, a service), the machine's limits hold.
        limits.check(sum(f.count for f in self.flocks), workers, scheduler)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._resolve_endpoints()

        # A header or token given as a business option is masked like in args.yaml.
        ScaleRunDir(out_dir).flocks.write_text(
            yaml.safe_dump(redact.redact_data(dump_flocks(self.flocks)), sort_keys=False)
        )
        extra: dict[str, Any] = {}
        if workers is None and scheduler is None:
            request = stop_request()  # ci/run's SIGINT/SIGTERM, when running under it
            # Under a launcher, its handler owns the signals: the engine watches the request
            # (a second signal cannot pull this thread out before the records are written).
            with watching_stop(raise_pending=False):
                result = run_flocks(
                    self.flocks,
                    out_dir,
                    RunSettings(
                        duration=self.duration,
                        live=None if live else False,
                        endpoints=self.endpoints,
                        stop_check=None if request is None else (lambda: request.reason),
                        handle_signals=request is None,
                    ),
                )
            start, end = result.start, result.end
            extra = {"stop_reason": result.stop_reason, "shards": 1}
            # The engine gave the load's memory back before encoding; this gives back what the
            # engine and the encoding left (1,000 HTTP users: 4 MiB before the summary's read).
            gcpolicy.give_back_after_load()
        else:
            begin = time.time()
            # A signal while the cluster starts only sets the launcher's request: the shards
            # are stopped as soon as they are submitted, and their records are written.
            with watching_stop(raise_pending=False):
                results, dead = run_distributed(
                    self.flocks,
                    out_dir,
                    duration=self.duration,
                    workers=workers,
                    scheduler=scheduler,
                    endpoints=self.endpoints,
                )
            start = min((r["start"] for r in results), default=begin)
            end = max((r["end"] for r in results), default=time.time())
            reasons = sorted({r["stop_reason"] for r in results})
            extra = {
                "stop_reason": ",".join(reasons) or "shards died",
                "shards": len(results) + len(dead),
                "dead_shards": dead,
            }
        # A shard that died left its last chunks spooled; one that cannot be read is kept for
        # the report to list, and the summary goes on without it.
        try:
            encode_spools(ScaleRunDir(out_dir).events)
        except (OSError, ValueError) as exc:
            log.warning("%s", one_line(str(exc)))
        summary = summ.build_summary(out_dir, self.flocks, start, end, extra)
        text = summ.write_summary(out_dir, summary, min_success_pct)
        log.info("scale run summary:\n%s", text.rstrip())
        if webhook_url:
            summ.post_webhook(webhook_url, text)
        failed = {
            name: why
            for name, flock in summary["flocks"].items()
            if (why := summ.flock_failed(flock, min_success_pct))
        }
        return {
            "flocks": {
                n: {k: f[k] for k in ("monkeys", "started", "successes", "failures", "success_pct")}
                for n, f in summary["flocks"].items()
            },
            "client_bound": summary["client_bound"],
            "client_bound_reason": summary["client_bound_reason"],
            "stop_reason": summary.get("stop_reason"),
            "failed_flocks": failed,
        }
