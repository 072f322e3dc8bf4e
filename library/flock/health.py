"""The engine watching itself: event-loop lag, CPU and memory, once a second.

Latencies measured by a saturated client are the client's, not the platform's. Lag is sampled
by a ticker that asks to wake every 10 ms and notes how late it woke; each second's samples give
one row (max, p99) together with the process CPU and RSS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from library.stats import percentiles

if TYPE_CHECKING:
    import psutil
    import pyarrow as pa

    from library.flock.gcpolicy import LoadGc

# One row a second: time (µs), loop lag max and p99 (ms), CPU %, RSS (bytes), active monkeys,
# shard; the columns `write` names.
HealthRow = tuple[int, float, float, float, int, int, int]

TICK_S = 0.010
LAG_P99_LIMIT_MS = 100.0  # a p99 lag above this in a second marks the second as client-bound
CPU_LIMIT_PERCENT = 90.0
BOUND_FRACTION = 0.10  # client-bound when more than this share of the seconds was bound


@dataclass
class Thresholds:
    lag_p99_ms: float = LAG_P99_LIMIT_MS
    cpu_percent: float = CPU_LIMIT_PERCENT
    fraction: float = BOUND_FRACTION


class HealthSampler:
    def __init__(
        self, active: Callable[[], int], shard: int = 0, gc_policy: LoadGc | None = None
    ) -> None:
        self.active = active
        self.shard = shard
        # Told the resident set each second: the collector runs when the process grows.
        self.gc_policy = gc_policy
        self.rows: list[HealthRow] = []
        self._lags: list[float] = []
        self.last_lag_ms = 0.0
        # The last second's lag p99 was over the client-bound limit: monkeys behind their
        # schedule do not burst to catch up, which would only deepen the client's own queue.
        self.saturated = False

    async def run(self) -> None:
        import psutil

        process = psutil.Process()
        process.cpu_percent(None)
        loop = asyncio.get_running_loop()
        next_row = loop.time() + 1.0
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            now = loop.time()
            self._lags.append(max(0.0, (now - before - TICK_S) * 1000.0))
            if now >= next_row:
                next_row = now + 1.0
                self._row(process)

    def _row(self, process: psutil.Process) -> None:
        lags, self._lags = self._lags, []
        # The same percentile rule as every other figure (library/stats.py).
        p99 = (percentiles(lags, (99,))[0] or 0.0) if lags else 0.0
        self.last_lag_ms = max(lags) if lags else 0.0
        self.saturated = p99 > LAG_P99_LIMIT_MS
        rss = process.memory_info().rss
        self.rows.append(
            (
                time.time_ns() // 1000,
                self.last_lag_ms,
                p99,
                process.cpu_percent(None),
                rss,
                self.active(),
                self.shard,
            )
        )
        if self.gc_policy is not None:
            self.gc_policy.check(rss)

    def write(self, out_dir: Path) -> Path | None:
        """Write the rows as one Parquet file under `out_dir` (the `health/` dir)."""
        if not self.rows:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*self.rows, strict=True))
        table = pa.table(
            {
                "time_us": pa.array(columns[0], pa.int64()),
                "loop_lag_max_ms": pa.array(columns[1], pa.float64()),
                "loop_lag_p99_ms": pa.array(columns[2], pa.float64()),
                "cpu_percent": pa.array(columns[3], pa.float64()),
                "rss_bytes": pa.array(columns[4], pa.int64()),
                "active_monkeys": pa.array(columns[5], pa.int64()),
                "shard": pa.array(columns[6], pa.int16()),
            }
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"health-s{self.shard:03d}.parquet"
        pq.write_table(table, path, compression="zstd")
        return path


def read_health_file(path: Path) -> pa.Table:
    """One health file. `ParquetFile`, not `pq.read_table`: the latter loads pyarrow's dataset
    layer (~13 MiB on first use), and a scale run reads its health at its end, at its peak."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read()


def client_bound(health_dir: Path, thresholds: Thresholds | None = None) -> tuple[bool, str | None]:
    """Whether the health rows say the client saturated, and why (one line)."""
    t = thresholds or Thresholds()
    files = sorted(Path(health_dir).glob("*.parquet"))
    if not files:
        return False, None
    reasons = []
    for path in files:
        rows = read_health_file(path).to_pylist()
        if not rows:
            continue
        shard = rows[0]["shard"]
        lagged = [r for r in rows if r["loop_lag_p99_ms"] > t.lag_p99_ms]
        busy = [r for r in rows if r["cpu_percent"] >= t.cpu_percent]
        where = f" (shard {shard})" if len(files) > 1 else ""
        if len(lagged) > max(1, t.fraction * len(rows)):
            worst = max(r["loop_lag_max_ms"] for r in lagged)
            reasons.append(
                f"event-loop lag p99 above {t.lag_p99_ms:g} ms in {len(lagged)} of {len(rows)} s,"
                f" worst {worst:.0f} ms{where}"
            )
        if len(busy) > max(1, t.fraction * len(rows)):
            reasons.append(
                f"process CPU at or above {t.cpu_percent:g}% in {len(busy)} of {len(rows)} s{where}"
            )
    return (True, "; ".join(reasons)) if reasons else (False, None)
