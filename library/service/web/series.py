"""A flock's rate, failures and latency percentiles over a window, from the hour partitions.

Each events file is immutable once written (a flush writes a new part file; compaction
writes a new file and removes the parts), so each is read once: its rows are reduced to
per-(flock, operation, 5-second bucket) counts, failures and a latency histogram, and that
small summary is kept by file. A chart over 15 minutes of a 10,000-monkey flock then reads
only the file written since the last poll instead of nine million rows.

Percentiles come from the histogram (`BINS` log-spaced bins from 1 µs to 1,000 s, each about
18 % wide; the bin's geometric middle is shown): a chart's precision. The post-mortem report
has the exact figures of any time range.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from library.eventstore import EventStore

BASE_S = 5  # the finest bucket kept per file
BINS = 120
LOW_US, HIGH_US = 1.0, 1e9
WINDOWS = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
MAX_BUCKETS = 120


def bucket_seconds(window_s: float) -> int:
    """The chart's bucket: a multiple of BASE_S giving at most MAX_BUCKETS buckets."""
    return int(BASE_S * math.ceil(window_s / MAX_BUCKETS / BASE_S))


def _edges() -> np.ndarray:
    import numpy as np

    return np.logspace(math.log10(LOW_US), math.log10(HIGH_US), BINS - 1)


@dataclass
class Summary:
    """One file's rows of one (flock, operation): per base bucket, counts and a histogram."""

    bucket: np.ndarray  # base bucket index (start_us // BASE_S s), sorted, unique
    count: np.ndarray
    failures: np.ndarray
    hist: np.ndarray  # (len(bucket), BINS)


def summarise(path: Path) -> dict[tuple[str, str], Summary]:
    """One events file reduced to per-(flock, operation) summaries."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(
        path, columns=["start_us", "duration_us", "flock", "operation", "success"]
    )
    if table.num_rows == 0:
        return {}
    start = table.column("start_us").to_numpy()
    duration = table.column("duration_us").to_numpy()
    success = table.column("success").to_numpy(zero_copy_only=False).astype(bool)
    # Text columns are dictionary-encoded: their indices are combined, never decoded per row.
    codes, names = [], []
    for column in ("flock", "operation"):
        values, index = _codes(table.column(column))
        codes.append(index)
        names.append(values)
    n_ops = max(1, len(names[1]))
    key = codes[0].astype(np.int64) * n_ops + codes[1]
    base = start // (BASE_S * 1_000_000)
    combined = np.stack([key, base])
    uniq, inverse = np.unique(combined, axis=1, return_inverse=True)
    inverse = inverse.reshape(-1)
    groups = uniq.shape[1]
    count = np.bincount(inverse, minlength=groups)
    failures = np.bincount(inverse[~success], minlength=groups)
    bins = np.searchsorted(_edges(), np.maximum(duration, 0), side="left")
    hist = np.bincount(inverse * BINS + bins, minlength=groups * BINS).reshape(groups, BINS)
    out: dict[tuple[str, str], Summary] = {}
    for k in np.unique(uniq[0]):
        sel = uniq[0] == k
        flock, op = names[0][int(k) // n_ops], names[1][int(k) % n_ops]
        out[(flock, op)] = Summary(uniq[1][sel], count[sel], failures[sel], hist[sel])
    return out


def _codes(column: Any) -> tuple[list[str], np.ndarray]:
    """A dictionary (or plain string) column as (distinct values, an int code per row)."""
    import numpy as np
    import pyarrow as pa

    values: list[str] = []
    lookup: dict[str, int] = {}
    parts = []
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        local = chunk.dictionary.to_pylist()
        remap = np.array([lookup.setdefault(v or "", len(lookup)) for v in local] or [0])
        indices = chunk.indices.to_numpy(zero_copy_only=False)
        parts.append(remap[np.nan_to_num(indices, nan=0).astype(np.int64)])
    values = [""] * len(lookup)
    for value, code in lookup.items():
        values[code] = value
    return values, np.concatenate(parts) if parts else np.zeros(0, np.int64)


class SeriesCache:
    """Each file's summaries, computed once; dropped when the file is gone."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[tuple[int, int], dict[tuple[str, str], Summary]]] = {}
        self._lock = threading.Lock()

    def summaries(self, store: EventStore, since_us: int) -> list[dict[tuple[str, str], Summary]]:
        out = []
        listed = store.files(since_us, None)
        for path in listed:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            stamp = (stat.st_mtime_ns, stat.st_size)
            with self._lock:
                cached = self._files.get(path)
            if cached is None or cached[0] != stamp:
                try:
                    cached = (stamp, summarise(path))
                except (FileNotFoundError, OSError):
                    continue  # removed by retention or compaction since it was listed
                with self._lock:
                    self._files[path] = cached
            out.append(cached[1])
        with self._lock:
            for path in [p for p in self._files if not p.exists()]:
                del self._files[path]
        return out

    def series(
        self,
        store: EventStore,
        flock: str,
        operation: str,
        lifecycle: set[str],
        window_s: int,
        now_s: float,
    ) -> dict[str, Any]:
        import numpy as np

        width = bucket_seconds(window_s)
        n = int(math.ceil(window_s / width))
        end_base = int(now_s // BASE_S) + 1
        first_base = end_base - n * (width // BASE_S)
        since_us = first_base * BASE_S * 1_000_000
        count = np.zeros(n, np.int64)
        failures = np.zeros(n, np.int64)
        hist = np.zeros((n, BINS), np.int64)
        per_op: dict[str, int] = {}
        parts = self.summaries(store, since_us)
        for part in parts:
            for (f, op), s in part.items():
                if f == flock and op not in lifecycle:
                    per_op[op] = per_op.get(op, 0) + int(s.count.sum())
        if operation not in per_op and per_op:
            # A business without a row of its main operation: its most frequent one.
            operation = max(per_op, key=per_op.__getitem__)
        for part in parts:
            for (f, op), s in part.items():
                if f != flock or op in lifecycle:
                    continue
                index = (s.bucket - first_base) // (width // BASE_S)
                keep = (index >= 0) & (index < n)
                np.add.at(count, index[keep], s.count[keep])
                np.add.at(failures, index[keep], s.failures[keep])
                if op == operation:
                    np.add.at(hist, index[keep], s.hist[keep])
        middles = _middles()
        lat: dict[str, list[float | None]] = {}
        totals = hist.sum(axis=1)
        cumulative = np.cumsum(hist, axis=1)
        for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            values: list[float | None] = []
            for i in range(n):
                if totals[i] == 0:
                    values.append(None)
                    continue
                b = int(np.searchsorted(cumulative[i], math.ceil(q * totals[i]), side="left"))
                values.append(round(float(middles[b]) / 1000.0, 4))
            lat[name] = values
        start_s = first_base * BASE_S
        return {
            "operation": operation,
            "bucket_s": width,
            "time": [start_s + (i + 0.5) * width for i in range(n)],
            "rate": [round(float(c) / width, 4) for c in count],
            "failures": [round(float(f) / width, 4) for f in failures],
            **lat,
            "events": int(count.sum()),
            "files": len(parts),
        }


def _middles() -> np.ndarray:
    """Each bin's geometric middle (µs); the first and last bins their inner edge."""
    import numpy as np

    edges = _edges()
    inner = np.sqrt(edges[:-1] * edges[1:])
    return np.concatenate([[edges[0]], inner, [edges[-1]]])
