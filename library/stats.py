"""The one way bosun turns timing events into numbers: per-(flock, operation) figures.

Every figure a person reads — `summary.json` of a scale run, the live view's last line, the
TAP runner's summary, the report's `stats.json` and tables, `report compare` — comes from
`operation_stats` (or, for a small in-memory list, `percentiles`), so two places cannot
disagree about what "p95" means.

The rules, in one place:

- **Population**: every event of the group, failed ones included. A timeout that took 30 s is
  latency a user saw; dropping failures would make a failing service look fast.
- **Percentiles**: linear interpolation between the closest ranks (numpy's default "linear"
  method, type 7 of Hyndman & Fan): p50 of [1, 2] is 1.5.
- **Units**: durations are recorded in microseconds and reported in milliseconds rounded to
  3 decimals; success % is rounded to 3 decimals.
- **Empty**: a group exists only when it has events, so count >= 1; a percentile of nothing
  is None (JSON null), never 0, so "no latency" cannot be mistaken for "instant".

Percentiles of many groups at once: sort `group * M + value` once (one int64 sort instead of
a sort per group), then every group is a contiguous slice and each percentile is an index into
it. Nothing loops over rows in Python.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from library.artifacts import LIFECYCLE_OPERATIONS

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pyarrow as pa

POPULATION = "all events of the (flock, operation), failed ones included"
PERCENTILES = (50.0, 95.0, 99.0)
CDF_POINTS = 101
# Engine bookkeeping rather than work done against the platform: counted, not latency.
LIFECYCLE = LIFECYCLE_OPERATIONS
# Fields that only exist when the data for them does (schedule lag, CDF): omitted when None.
_OPTIONAL = frozenset(
    {
        "cdf_ms",
        "corrected_p50_ms",
        "corrected_p95_ms",
        "corrected_p99_ms",
        "corrected_max_ms",
        "lag_p50_ms",
        "lag_p99_ms",
        "lag_max_ms",
        "intended_per_s",
        "achieved_per_s",
        "achieved_pct",
        "behind_schedule",
    }
)
# A scheduled (flock, operation) whose achieved rate is below this share of its intended rate
# sent less load than it was configured for, whatever the CPU says.
BEHIND_SCHEDULE_PCT = 95.0


@dataclass
class OperationStats:
    """Figures of one (flock, operation) over `POPULATION`."""

    flock: str
    operation: str
    count: int
    failures: int
    success_pct: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    # 101 points (p0..p100) for CDF plots; only when asked for.
    cdf_ms: list[float | None] | None = None
    # Coordinated-omission corrected latency (measured from the intended start: lag + duration)
    # and the schedule lag itself; None when the events carry no schedule (lag_us all 0).
    corrected_p50_ms: float | None = None
    corrected_p95_ms: float | None = None
    corrected_p99_ms: float | None = None
    corrected_max_ms: float | None = None
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    # Rates of scheduled events (lag_us present): per monkey, executions over the span of
    # their intended starts (start - lag) and over the span of their actual starts, summed
    # over the monkeys; `behind_schedule` when achieved < BEHIND_SCHEDULE_PCT % of intended.
    intended_per_s: float | None = None
    achieved_per_s: float | None = None
    achieved_pct: float | None = None
    behind_schedule: bool | None = None

    @property
    def key(self) -> str:
        return f"{self.flock}/{self.operation}" if self.flock else self.operation

    @property
    def lifecycle(self) -> bool:
        return self.operation in LIFECYCLE

    @property
    def successes(self) -> int:
        return self.count - self.failures

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every base field, optional fields only when set, plus `key`."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue
            out[f.name] = value
        out["key"] = self.key
        out["lifecycle"] = self.lifecycle
        return out


def ms(us: float) -> float | None:
    """Microseconds -> milliseconds rounded to 3 decimals; NaN -> None (JSON null)."""
    return None if us != us else round(float(us) / 1000.0, 3)


def percentiles(values: Sequence[float], qs: Sequence[float] = PERCENTILES) -> list[float | None]:
    """Percentiles (0..100) of a small in-memory list, by the same rule; None when empty.

    numpy's "linear" method written out, to its rounding, so that a load process (the health
    sampler's loop lag every second) does not load numpy (~15 MiB) for a hundred values.
    """
    if not len(values):
        return [None] * len(qs)
    ordered = sorted(float(v) for v in values)
    last = len(ordered) - 1
    out: list[float | None] = []
    for q in qs:
        index = (q / 100) * last
        below = math.floor(index)
        above = min(below + 1, last)
        a, b, t = ordered[below], ordered[above], index - below
        # numpy's _lerp: from the nearer end, so that t = 1 gives b exactly.
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return out


@dataclass
class GroupSort:
    """Values sorted within each group: group g is positions `offsets[g]:offsets[g + 1]`.

    With `span`, the array holds `g * span + value` (one int64 sort sorted every group at
    once); the group part is taken off only at the few positions a quantile reads, not from
    every row.
    """

    keys: Any
    offsets: Any
    span: int | None

    def _at(self, index: Any, group: Any) -> Any:
        values = self.keys[index]
        if self.span is not None:
            values = values - group * self.span
        return values.astype(float)

    def quantiles(self, qs: Any) -> Any:
        """Linear-interpolated quantiles (0..1) per group: (n_groups, len(qs)), NaN if empty."""
        import numpy as np

        qs = np.asarray(qs, float)
        n = np.diff(self.offsets)
        out = np.full((len(n), len(qs)), np.nan)
        has = n > 0
        if not has.any():
            return out
        groups = np.flatnonzero(has)[:, None]
        first = self.offsets[:-1][has, None].astype(float)
        pos = first + qs[None, :] * (n[has, None] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, self.offsets[1:][has, None] - 1)
        frac = pos - lo
        out[has] = self._at(lo, groups) * (1 - frac) + self._at(hi, groups) * frac
        return out

    def maxima(self) -> Any:
        """Largest value per group, NaN if empty."""
        import numpy as np

        n = np.diff(self.offsets)
        out = np.full(len(n), np.nan)
        has = np.flatnonzero(n > 0)
        out[has] = self._at(self.offsets[1:][has] - 1, has)
        return out


def _group_sums(group: Any, values: Any, n_groups: int, chunk: int = 1 << 20) -> Any:
    """Sum of max(value, 0) per group, a million rows at a time (bincount's float weights
    would otherwise be one more copy of the whole column)."""
    import numpy as np

    out = np.zeros(n_groups)
    for at in range(0, len(values), chunk):
        part = np.maximum(values[at : at + chunk], 0)
        out += np.bincount(group[at : at + chunk], weights=part, minlength=n_groups)
    return out


def sort_groups(group: Any, values: Any, n_groups: int) -> GroupSort:
    """Sort `values` within their `group` (ints in 0..n_groups-1); negatives count as 0."""
    import numpy as np

    counts = np.bincount(group, minlength=n_groups) if len(group) else np.zeros(n_groups, int)
    offsets = np.zeros(n_groups + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    if not len(values):
        return GroupSort(np.zeros(0, np.int64), offsets, None)
    values = np.asarray(values, np.int64)
    if values.min() < 0:  # a clock step backwards
        values = np.maximum(values, 0)
    span = int(values.max()) + 1
    if n_groups * span < 2**62:
        key = np.asarray(group, np.int64) * span
        key += values
        key.sort()
        return GroupSort(key, offsets, span)
    order = np.lexsort((values, group))
    return GroupSort(values[order], offsets, None)


def operation_stats(
    flock_codes: np.ndarray,
    flock_names: Sequence[str],
    operation_codes: np.ndarray,
    operation_names: Sequence[str],
    success: np.ndarray,
    duration_us: np.ndarray,
    lag_us: np.ndarray | None = None,
    *,
    cdf: bool = False,
    start_us: np.ndarray | None = None,
    monkey_codes: np.ndarray | None = None,
) -> list[OperationStats]:
    """One `OperationStats` per (flock, operation) present, ordered by (flock, operation).

    Strings come as dictionary codes (`*_codes` index `*_names`), so grouping is integer work.
    `lag_us` (schedule lag per event, 0 when unscheduled) adds the corrected percentiles;
    with `start_us` and `monkey_codes` too, the intended and achieved rates.
    """
    import numpy as np

    n = len(duration_us)
    if not n:
        return []
    n_ops = max(len(operation_names), 1)
    n_cells = max(len(flock_names), 1) * n_ops
    # int32 group numbers where they fit: a 10M-event run's temporaries are half the size.
    small = np.int32 if n_cells < 2**31 else np.int64
    key: Any = np.asarray(flock_codes).astype(small)
    key *= n_ops
    key += np.asarray(operation_codes, small)
    # Dense group numbers from a lookup table: O(n), where np.unique would sort every row.
    counts_all = np.bincount(key, minlength=n_cells)
    present = np.flatnonzero(counts_all)
    remap = np.full(len(counts_all), -1, small)
    remap[present] = np.arange(len(present))
    group = remap[key]
    del key
    n_groups = len(present)
    counts = counts_all[present]
    ok = np.asarray(success, bool)
    failures = np.bincount(group[~ok], minlength=n_groups)
    duration = np.asarray(duration_us, np.int64)
    durations = sort_groups(group, duration, n_groups)
    qs = [p / 100 for p in PERCENTILES]
    if cdf:
        qs += list(np.linspace(0, 1, CDF_POINTS))
    quant = durations.quantiles(qs)
    maxima = durations.maxima()
    del durations
    means = _group_sums(group, duration, n_groups) / counts
    corrected = lag = rates = None
    if lag_us is not None and len(lag_us) == n and np.any(lag_us):
        lag_arr = np.maximum(np.asarray(lag_us, np.int64), 0)
        corrected_sort = sort_groups(group, lag_arr + np.maximum(duration, 0), n_groups)
        corrected = corrected_sort.quantiles([p / 100 for p in PERCENTILES])
        corrected_max = corrected_sort.maxima()
        lag_sort = sort_groups(group, lag_arr, n_groups)
        lag = lag_sort.quantiles([0.5, 0.99])
        lag_max = lag_sort.maxima()
        if start_us is not None and monkey_codes is not None:
            rates = schedule_rates(group, n_groups, monkey_codes, start_us, lag_arr)
    out = []
    for g, k in enumerate(present):
        count = int(counts[g])
        fails = int(failures[g])
        row = OperationStats(
            flock=str(flock_names[int(k) // n_ops]) if len(flock_names) else "",
            operation=str(operation_names[int(k) % n_ops]),
            count=count,
            failures=fails,
            success_pct=round(100.0 * (count - fails) / count, 3),
            p50_ms=ms(quant[g, 0]),
            p95_ms=ms(quant[g, 1]),
            p99_ms=ms(quant[g, 2]),
            max_ms=ms(maxima[g]),
            mean_ms=ms(means[g]),
            cdf_ms=[ms(v) for v in quant[g, len(PERCENTILES) :]] if cdf else None,
        )
        if corrected is not None and lag is not None:
            row.corrected_p50_ms = ms(corrected[g, 0])
            row.corrected_p95_ms = ms(corrected[g, 1])
            row.corrected_p99_ms = ms(corrected[g, 2])
            row.corrected_max_ms = ms(corrected_max[g])
            row.lag_p50_ms = ms(lag[g, 0])
            row.lag_p99_ms = ms(lag[g, 1])
            row.lag_max_ms = ms(lag_max[g])
            if rates is not None and rates[1][g] > 0:
                intended, achieved = float(rates[0][g]), float(rates[1][g])
                row.intended_per_s = round(intended, 3)
                row.achieved_per_s = round(achieved, 3)
                row.achieved_pct = round(100.0 * achieved / intended, 2) if intended else None
                row.behind_schedule = bool(intended and achieved < intended * BEHIND_PCT)
        out.append(row)
    out.sort(key=lambda r: (r.flock, r.operation))
    return out


BEHIND_PCT = BEHIND_SCHEDULE_PCT / 100.0


def schedule_rates(
    group: Any, n_groups: int, monkey_codes: Any, start_us: Any, lag_us: Any
) -> tuple[Any, Any]:
    """(intended, achieved) executions/s per group, summed over its monkeys.

    A monkey's achieved rate is (n - 1) / (last start - first start); its intended rate the
    same over its intended starts (start - lag): a monkey that fell behind and never caught
    up has a longer actual span than intended. Monkeys with fewer than two events count 0.
    """
    import numpy as np

    monkey = np.asarray(monkey_codes, np.int64)
    n_monkeys = int(monkey.max()) + 1 if len(monkey) else 1
    key = np.asarray(group, np.int64) * n_monkeys + monkey
    size = n_groups * n_monkeys
    start = np.asarray(start_us, np.int64)
    intended = start - lag_us
    big = np.iinfo(np.int64).max
    spans = []
    for times in (intended, start):
        first = np.full(size, big, np.int64)
        last = np.full(size, -big, np.int64)
        np.minimum.at(first, key, times)
        np.maximum.at(last, key, times)
        spans.append(last - first)
    n = np.bincount(key, minlength=size)
    per_group = []
    for span in spans:
        ok = (n > 1) & (span > 0)
        rate = np.zeros(size)
        rate[ok] = (n[ok] - 1) / (span[ok] / 1e6)
        per_group.append(rate.reshape(n_groups, n_monkeys).sum(axis=1))
    return per_group[0], per_group[1]


def dictionary_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """(int codes, names) of a string or dictionary column, chunks with different dictionaries
    merged into one (nulls become "")."""
    import numpy as np
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    names: dict[str, int] = {}
    parts = []
    for chunk in chunks:
        if not pa.types.is_dictionary(chunk.type):
            # The method loads Arrow's compute functions (~10 MiB for good) only when reached,
            # which events files, whose strings are dictionaries already, never do.
            chunk = chunk.dictionary_encode()
        dictionary = ["" if v is None else str(v) for v in chunk.dictionary.to_pylist()]
        mapping = np.fromiter(
            (names.setdefault(v, len(names)) for v in dictionary), np.int64, len(dictionary)
        )
        indices = chunk.indices
        if indices.null_count:
            mapping = np.append(mapping, names.setdefault("", len(names)))
            indices = indices.fill_null(len(dictionary))
        parts.append(mapping[indices.to_numpy(zero_copy_only=False)])
    codes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return codes, list(names)


# The events columns `table_stats` reads: a caller may read only these.
STATS_COLUMNS = ("flock", "operation", "monkey", "start_us", "duration_us", "lag_us", "success")


def table_stats(table: pa.Table, *, cdf: bool = False) -> list[OperationStats]:
    """`operation_stats` of an events table (library/events.py schema)."""
    if not table.num_rows:
        return []
    flock, flock_names = dictionary_codes(table.column("flock"))
    operation, op_names = dictionary_codes(table.column("operation"))
    lag = (
        table.column("lag_us").to_numpy(zero_copy_only=False)
        if "lag_us" in table.column_names
        else None
    )
    scheduled = lag is not None and bool(lag.any())
    return operation_stats(
        flock,
        flock_names,
        operation,
        op_names,
        table.column("success").to_numpy(zero_copy_only=False),
        table.column("duration_us").to_numpy(zero_copy_only=False),
        lag,
        cdf=cdf,
        start_us=table.column("start_us").to_numpy(zero_copy_only=False) if scheduled else None,
        monkey_codes=dictionary_codes(table.column("monkey"))[0] if scheduled else None,
    )
