"""What a scale run may ask of this machine, checked before any monkey starts.

Flock files and overrides come from outside (a campaign repository, a trigger's ``/var``): a
count of 1,000,000 monkeys ran for 95 s, held 4.2 GB and exited 0; ``--workers 64`` on two
cores took 195 s and 5.1 GB. Such runs are refused up front, naming the flag to change and the
estimate that refused them.
"""

from __future__ import annotations

import math
import os

from library.errors import UserError

# Measured: 1,000,000 EmptyLoop monkeys held 4.2 GB in one process (about 4.4 kB each); a Dask
# worker process starts at about 80 MB (64 of them: 5.1 GB).
MONKEY_BYTES = 4_400
WORKER_BYTES = 80_000_000
# One event loop keeps up with about 10,000 busy monkeys (docs/FACTS); ten times that is the
# most one process is given: beyond it, latencies measure the client, not the platform.
MAX_MONKEYS_PER_PROCESS = 100_000
# An estimate above this share of the memory available now is refused.
MEMORY_SHARE = 0.5


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check(total_monkeys: int, workers: int | None, scheduler: str | None) -> None:
    """Refuse a run this machine cannot carry; UserError naming the flag and the estimate."""
    cpus = os.cpu_count() or 1
    if workers is not None and workers > cpus:
        raise UserError(
            f"--workers {workers}: this machine has {cpus} CPU core(s); more worker processes "
            f"than cores only add start-up time and memory (about {_gb(workers * WORKER_BYTES)} "
            f"for {workers}); use --workers {cpus} or fewer, or --scheduler with remote workers"
        )
    if scheduler is not None:
        return  # the monkeys run on the scheduler's workers, not here
    shards = workers or 1
    per_process = math.ceil(total_monkeys / shards)
    if per_process > MAX_MONKEYS_PER_PROCESS:
        flag = "--workers N" if workers is None else f"more than --workers {workers}"
        raise UserError(
            f"{total_monkeys:,} monkeys: {per_process:,} in one process, above the limit of "
            f"{MAX_MONKEYS_PER_PROCESS:,} (about {_gb(per_process * MONKEY_BYTES)}); lower the "
            f"flocks' count (--count) or spread them with {flag} or --scheduler"
        )
    estimate = total_monkeys * MONKEY_BYTES + (workers or 0) * WORKER_BYTES
    available = _available_memory()
    if available is not None and estimate > MEMORY_SHARE * available:
        raise UserError(
            f"{total_monkeys:,} monkeys need about {_gb(estimate)} here and this machine has "
            f"{_gb(available)} available; lower the flocks' count (--count) or use --scheduler "
            "with workers elsewhere"
        )


def _available_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no figure, no memory check (the monkey cap still holds)
        return None
