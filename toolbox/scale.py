"""Scale loads: flocks of bot monkeys running businesses (mobu's flocks), for Scale Friday."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from library import env, yamlio
from library.errors import CheckFailed, UserError
from library.flock import limits
from library.flock.check import check_file
from library.flock.models import load_flocks
from library.flock.runner import ScaleRun
from library.toolbox import command

log = logging.getLogger(__name__)


@command
def run(
    flocks: Path,
    duration: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    count: int | None = None,
    option: list[str] | None = None,
    start_batch_size: int | None = None,
    start_batch_wait: str | None = None,
    min_success_pct: float = 95.0,
    webhook_url: str | None = None,
    hub_url: str | None = None,
    tap_url: str | None = None,
    sia_url: str | None = None,
    discovery_url: str | None = None,
    token_file: Path | None = None,
    live: bool = True,
) -> dict[str, Any]:
    """Run flocks of monkeys against the platform and summarise them.

    The flock file is a list of flocks in mobu's schema (a mobu ``autostart:`` list runs as
    is). Every timed operation goes to ``events/*.parquet``, the engine's own health to
    ``health/*.parquet``; ``summary.json``, ``summary.txt`` (mobu's daily-report lines) and a
    ``junit.xml`` testcase per flock are written at the end. Ctrl-C stops the monkeys and deletes
    their labs; a second Ctrl-C stops at once (events are still written).

    Args:
        flocks: Flock YAML file.
        duration: How long to run (``90s``, ``5m``, ``1h30m``); until every monkey finished when
            omitted.
        workers: Split the monkeys across this many local Dask worker processes.
        scheduler: Address of a Dask scheduler whose workers run the shards.
        count: Replace every flock's monkey count (flocks with ``user_spec`` only).
        option: Business option override for every flock, ``NAME=VALUE`` (YAML value).
        start_batch_size: Replace every flock's start batch size (monkeys started at once).
        start_batch_wait: Replace every flock's wait between two start batches (``30s``).
        min_success_pct: A flock below this success percentage fails its testcase and the command.
        webhook_url: Post the summary lines there as Slack-compatible JSON.
        hub_url: Hub base URL ($BOSUN_HUB_URL, else the sandbox).
        tap_url: TAP service URL ($BOSUN_TAP_URL, else the sandbox); given, it serves every
            flock's dataset.
        sia_url: SIA v2 service URL ($BOSUN_SIA_URL, else the sandbox); given, it serves every
            flock's dataset.
        discovery_url: Service discovery (Repertoire) base URL ($BOSUN_DISCOVERY_URL, else the
            sandbox's): finds each flock's TAP and SIA service by ``dataset``, and Muster.
        token_file: Admin token file ($BOSUN_TOKEN_FILE, else the sandbox).
        live: Show the live table in a terminal (a status line every 10 s in CI).
    """
    if workers is not None and scheduler is not None:
        raise UserError("--workers and --scheduler exclude each other: give one")
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: give at least 1")
    # The size of the run is checked first, before anything walks a million monkeys.
    planned = load_flocks(flocks)
    total = sum(count if count is not None else f.count for f in planned)
    limits.check(total, workers, scheduler)
    scale = ScaleRun.prepare(
        flocks,
        duration=duration,
        count=count,
        options=option or [],
        start_batch_size=start_batch_size,
        start_batch_wait=start_batch_wait,
        endpoints={
            "hub_url": hub_url,
            "tap_url": tap_url,
            "sia_url": sia_url,
            "discovery_url": discovery_url,
            "token_file": str(token_file) if token_file else None,
        },
    )
    result = scale.execute(
        env.artifact_dir(),
        workers=workers,
        scheduler=scheduler,
        live=live,
        min_success_pct=min_success_pct,
        webhook_url=webhook_url,
    )
    if result["failed_flocks"]:
        # A flock that ran and missed its bar is a failure (exit 1), not bad input (exit 2).
        raise CheckFailed(
            "scale run: "
            + "; ".join(f"{n}: {why}" for n, why in result["failed_flocks"].items())
            + " (see summary.txt)"
        )
    return result


@command(record=False)
def check(flocks: Path, hub_url: str | None = None, tap_url: str | None = None) -> dict[str, Any]:
    """Print the flocks of a file as they would run, without running them (a dry run).

    The file is a list of flocks, an ``autostart:`` list, or a Phalanx values file
    (``config.autostart``). For each flock the YAML shows its users as mobu generates them,
    the scopes of their tokens, every business option with its default, what one execution
    talks to (hub and spawn form, TAP service and query set, URL...), whether bosun can run
    that business here, and one-line notices where bosun reads the file differently from mobu.
    Nothing is contacted. The first invalid flock stops the check: one line naming the flock
    and the field, exit 2.

    Args:
        flocks: Flock YAML file.
        hub_url: Hub base URL to show ($BOSUN_HUB_URL, else "the sandbox's").
        tap_url: TAP service URL to show ($BOSUN_TAP_URL, else "the dataset's").
    """
    result = check_file(flocks, {"hub_url": hub_url, "tap_url": tap_url})
    print(yamlio.dumps(result), end="")
    return {"flocks": result}
