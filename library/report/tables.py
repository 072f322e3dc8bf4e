"""Group, bin and take percentiles of events with numpy, never a Python loop over rows.

Per-(flock, operation) figures and the percentile rule come from `library.stats`; this module
adds what only the report shows: time bins, per-target and per-error tables, sweeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from library.artifacts import Operation
from library.report.parse import Categorical
from library.stats import (
    LIFECYCLE,
    PERCENTILES,
    operation_stats,
    percentiles,
    sort_groups,
)
from library.stats import ms as _ms

_BIN_WIDTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_BINS = 300


@dataclass
class Bins:
    t0_us: int
    width_s: int
    n: int
    index: Any  # bin of every event

    def centers_s(self):
        import numpy as np

        return (np.arange(self.n) + 0.5) * self.width_s

    def of(self, time_us):
        import numpy as np

        return np.clip((time_us - self.t0_us) // (self.width_s * 1_000_000), 0, self.n - 1)


def time_bins(start_us, lo_us: int | None = None, hi_us: int | None = None) -> Bins:
    """Bins of a width that keeps the plotted series under MAX_BINS points.

    `lo_us`/`hi_us` widen the span to cover other series (engine health) drawn on the same axis.
    """
    import numpy as np

    bounds = [v for v in (lo_us, hi_us) if v is not None]
    if len(start_us):
        bounds += [int(start_us.min()), int(start_us.max())]
    if not bounds:
        return Bins(0, 1, 0, np.zeros(0, np.int64))
    t0, t1 = min(bounds), max(bounds)
    span_s = (t1 - t0) / 1e6
    width = next((w for w in _BIN_WIDTHS_S if span_s / w <= MAX_BINS), _BIN_WIDTHS_S[-1])
    n = int(span_s // width) + 1
    index = start_us - t0
    index //= width * 1_000_000
    # At most MAX_BINS bins (plus the widened span): int32 halves a 10M-event column.
    return Bins(t0, width, n, index.astype(np.int32))


def summary(events) -> list[dict[str, Any]]:
    """One row per (flock, operation) by `library.stats` (its population and percentile rule),
    with CDF points; per flock the work first, busiest first, engine bookkeeping last."""
    if events is None or not len(events):
        return []
    rows = [
        s.as_dict()
        for s in operation_stats(
            events.flock.codes,
            events.flock.categories,
            events.operation.codes,
            events.operation.categories,
            events.success,
            events.duration_us,
            events.lag_us,
            cdf=True,
            start_us=None if events.monkey is None else events.start_us,
            monkey_codes=None if events.monkey is None else events.monkey.codes,
        )
    ]
    rows.sort(key=lambda r: (r["flock"], r["lifecycle"], -r["count"]))
    return rows


def plotted_operations(events, limit: int = 8) -> list[int]:
    """Codes of the busiest operations that carry latency, busiest first."""
    import numpy as np

    counts = np.bincount(events.operation.codes, minlength=len(events.operation.categories))
    order = np.argsort(-counts, kind="stable")
    keep = [int(c) for c in order if counts[c] and events.operation.categories[c] not in LIFECYCLE]
    return keep[:limit]


def over_time(events, bins: Bins, ops: list[int]) -> dict[str, dict[str, Any]]:
    """Per operation: successes/s, failures/s and p50/p95/p99 ms of every time bin."""
    import numpy as np

    if not ops:
        return {}
    n_groups = len(ops) * bins.n
    # Group = plotted operation * bins + bin, in int32 (at most 8 * MAX_BINS groups); rows of
    # operations not plotted are dropped only when there are some (no copy otherwise).
    remap = np.full(len(events.operation.categories), -1, np.int32)
    remap[ops] = np.arange(len(ops))
    group = remap[events.operation.codes]
    keep = group >= 0
    every = bool(keep.all())
    group *= np.int32(bins.n)
    group += bins.index.astype(np.int32, copy=False)
    ok, dur = events.success, events.duration_us
    if not every:
        group, ok, dur = group[keep], ok[keep], dur[keep]
    del keep
    allc = np.bincount(group, minlength=n_groups)
    failc = np.bincount(group[~ok], minlength=n_groups)
    okc = (allc - failc).reshape(len(ops), bins.n)
    allc = allc.reshape(len(ops), bins.n)
    quant = sort_groups(group, dur, n_groups).quantiles([p / 100 for p in PERCENTILES]) / 1000.0
    quant = quant.reshape(len(ops), bins.n, len(PERCENTILES))
    out = {}
    for i, code in enumerate(ops):
        out[events.operation.categories[code]] = {
            "ok_per_s": okc[i] / bins.width_s,
            "fail_per_s": (allc[i] - okc[i]) / bins.width_s,
            "p50": quant[i, :, 0],
            "p95": quant[i, :, 1],
            "p99": quant[i, :, 2],
        }
    return out


def failures_by_class(events, bins: Bins, limit: int = 8) -> tuple[list[str], Any]:
    """(class names, counts array (classes, bins)); classes past `limit` become "other"."""
    import numpy as np

    failed = ~events.success
    if not failed.any():
        return [], np.zeros((0, bins.n))
    codes = events.error_class.codes[failed]
    n_cls = len(events.error_class.categories)
    totals = np.bincount(codes, minlength=n_cls)
    order = [int(c) for c in np.argsort(-totals, kind="stable") if totals[c]]
    top, rest = order[:limit], order[limit:]
    slot = np.full(n_cls, len(top), np.int64)
    slot[top] = np.arange(len(top))
    n_slots = len(top) + (1 if rest else 0)
    counts = np.bincount(
        slot[codes] * bins.n + bins.index[failed], minlength=(len(top) + 1) * bins.n
    ).reshape(len(top) + 1, bins.n)
    names = [events.error_class.categories[c] or "(no class)" for c in top]
    if rest:
        names.append("other")
    return names, counts[:n_slots]


def error_table(events) -> list[dict[str, Any]]:
    """Failures per (operation, error class) with one example message, most frequent first."""
    import numpy as np

    failed = ~events.success
    if events is None or not failed.any():
        return []
    n_cls = len(events.error_class.categories)
    key = events.operation.codes[failed].astype(np.int64) * n_cls + events.error_class.codes[failed]
    present, counts = np.unique(key, return_counts=True)
    rows = []
    for k, c in zip(present, counts, strict=True):
        cls = events.error_class.categories[int(k) % n_cls]
        rows.append(
            {
                "operation": events.operation.categories[int(k) // n_cls],
                "error_class": cls or "(no class)",
                "count": int(c),
                "example": events.error_examples.get(cls, ""),
            }
        )
    rows.sort(key=lambda r: -r["count"])
    return rows


def by_target(events, operations: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per target of the given operations: count, failures, p50/p95/max ms, mean rows."""
    import numpy as np

    codes = [events.operation.code_of(op) for op in operations]
    codes = [c for c in codes if c >= 0]
    if events is None or not codes:
        return []
    wanted = np.zeros(len(events.operation.categories), bool)
    wanted[codes] = True
    mask = wanted[events.operation.codes]  # a lookup, where np.isin sorts
    if not mask.any():
        return []
    n_ops = len(events.operation.categories)
    key = events.target.codes[mask].astype(np.int64) * n_ops + events.operation.codes[mask]
    # Dense group numbers by a lookup table (np.unique would sort every row).
    cells = np.bincount(key, minlength=len(events.target.categories) * n_ops)
    present = np.flatnonzero(cells)
    remap = np.full(len(cells), -1, np.int64)
    remap[present] = np.arange(len(present))
    group = remap[key]
    n = len(present)
    dur = events.duration_us[mask]
    counts = np.bincount(group, minlength=n)
    failures = np.bincount(group, weights=~events.success[mask], minlength=n)
    rows_arr = events.rows[mask]
    has_rows = rows_arr >= 0
    row_sum = np.bincount(group, weights=np.where(has_rows, rows_arr, 0), minlength=n)
    row_n = np.bincount(group, weights=has_rows, minlength=n)
    durations = sort_groups(group, dur, n)
    quant = durations.quantiles([0.05, 0.25, 0.5, 0.75, 0.95])
    maxima = durations.maxima()
    out = []
    for g, k in enumerate(present):
        out.append(
            {
                "operation": events.operation.categories[int(k) % n_ops],
                "target": events.target.categories[int(k) // n_ops] or "(none)",
                "count": int(counts[g]),
                "failures": int(failures[g]),
                "p5_ms": _ms(quant[g, 0]),
                "p25_ms": _ms(quant[g, 1]),
                "p50_ms": _ms(quant[g, 2]),
                "p75_ms": _ms(quant[g, 3]),
                "p95_ms": _ms(quant[g, 4]),
                "max_ms": _ms(maxima[g]),
                "mean_rows": round(float(row_sum[g] / row_n[g]), 1) if row_n[g] else None,
            }
        )
    out.sort(key=lambda r: -(r["p95_ms"] or 0))
    return out


def active_monkeys(run, bins: Bins):
    """Active monkeys per bin: from engine health when present, else from start/stop events."""
    import numpy as np

    if bins.n == 0:
        return None
    health = run.health
    if health is not None and np.isfinite(health["active_monkeys"]).any():
        b = bins.of(health["time_us"])
        shards = health["shard"].astype(np.int64)
        shards -= shards.min()
        n_sh = int(shards.max()) + 1
        values = np.nan_to_num(health["active_monkeys"])
        # Each shard reports its own count; take each shard's peak in the bin, then add shards.
        peak = np.zeros(n_sh * bins.n)
        np.maximum.at(peak, shards * bins.n + b, values)
        return peak.reshape(n_sh, bins.n).sum(axis=0)
    ev = run.events
    start, stop = (
        ev.operation.code_of(Operation.MONKEY_START),
        ev.operation.code_of(Operation.MONKEY_STOP),
    )
    if start < 0:
        return None
    delta = np.where(ev.operation.codes == start, 1, 0) - np.where(ev.operation.codes == stop, 1, 0)
    per_bin = np.bincount(bins.index, weights=delta, minlength=bins.n)
    return np.cumsum(per_bin)


def health_series(health, bins: Bins) -> dict[str, Any] | None:
    """Per bin: worst loop lag (max, p99) and the busiest shard's CPU %."""
    import numpy as np

    if health is None or bins.n == 0:
        return None
    b = bins.of(health["time_us"])
    out = {}
    for name in ("loop_lag_max_ms", "loop_lag_p99_ms", "cpu_percent"):
        values = health[name]
        series = np.full(bins.n, -np.inf)
        finite = np.isfinite(values)
        np.maximum.at(series, b[finite], values[finite])
        series[~np.isfinite(series)] = np.nan
        out[name] = series
    return out


def sweep_rows(run) -> tuple[list[str], list[dict[str, Any]]]:
    """(swept keys, one row per sweep point with its settings and per-operation p50/p95/success).

    A point's metrics come from the events below its dir; a point without events (a step that
    only calls toolbox commands) is measured by the durations of those commands. When a setting
    ran more than once (a resumed sweep), the last green run of it is kept.
    """
    import numpy as np

    if not run.sweep:
        return [], []
    latest: dict[str, Any] = {}
    for point in sorted(run.sweep, key=lambda p: p.path):
        ident = json.dumps(point.settings, sort_keys=True, default=str)
        kept = latest.get(ident)
        if kept is None or point.exit_code == 0 or kept.exit_code != 0:
            latest[ident] = point
    points = sorted(latest.values(), key=lambda p: p.path)
    keys = list(dict.fromkeys(k for point in points for k in point.settings))
    ev = run.events
    rows = []
    for point in points:
        row = {
            "path": point.path,
            "settings": point.settings,
            "finished": point.finished,
            "exit_code": point.exit_code,
            "operations": {},
        }
        prefix = point.path + "/"
        if ev is not None and len(ev):
            inside = np.array(
                [s == point.path or s.startswith(prefix) for s in ev.source.categories], bool
            )
            mask = inside[ev.source.codes] if len(inside) else np.zeros(len(ev), bool)
            for stat in summary(_subset(ev, mask)):
                if stat["operation"] in LIFECYCLE:
                    continue
                row["operations"][stat["key"]] = {
                    k: stat[k] for k in ("count", "success_pct", "p50_ms", "p95_ms", "p99_ms")
                }
        if not row["operations"]:
            row["operations"] = _command_stats(
                [c for c in run.commands if c.path.startswith(prefix)]
            )
        rows.append(row)
    return keys, rows


def _command_stats(commands) -> dict[str, dict[str, Any]]:
    """Per `group command`: count, success %, p50/p95/p99 of the call durations (ms)."""

    groups: dict[str, list] = {}
    for c in commands:
        groups.setdefault(f"{c.group} {c.command}", []).append(c)
    out = {}
    for name, calls in groups.items():
        us = [c.duration_s * 1e6 for c in calls if c.duration_s is not None]
        ok = sum(c.status == "success" for c in calls)
        p = percentiles(us)
        out[name] = {
            "count": len(calls),
            "success_pct": round(100.0 * ok / len(calls), 3),
            "p50_ms": None if p[0] is None else _ms(p[0]),
            "p95_ms": None if p[1] is None else _ms(p[1]),
            "p99_ms": None if p[2] is None else _ms(p[2]),
        }
    return out


def _subset(events, mask):
    def cat(c):
        return Categorical(c.codes[mask], c.categories)

    return replace(
        events,
        start_us=events.start_us[mask],
        duration_us=events.duration_us[mask],
        success=events.success[mask],
        rows=events.rows[mask],
        flock=cat(events.flock),
        operation=cat(events.operation),
        target=cat(events.target),
        error_class=cat(events.error_class),
        source=cat(events.source),
        lag_us=None if events.lag_us is None else events.lag_us[mask],
        monkey=None if events.monkey is None else cat(events.monkey),
    )
