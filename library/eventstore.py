"""Events kept for months: the standing service's events, partitioned by hour, with retention.

Layout, Hive-style so that pyarrow, DuckDB or Spark read it as one dataset:

    EVENTS_DIR/date=YYYY-MM-DD/hour=HH/part-sSSS-<first start us>-<n>.parquet

Every row goes to the partition of its own start time (UTC), so a time range maps to a set
of partitions exactly, whatever the flush that wrote it. The files are the events schema of
`library.events` (`schema()`): the recorder here is the engine's, with only the file layout
changed, and `read` hands back the same table shape as `library.events.read_events`.

Retention removes the oldest data first: whole partitions whose hour ended more than
`max_age` ago, files older than `max_age` inside newer partitions, then the oldest files until
the directory is under `max_bytes`. The newest file is never removed by size (it is being
written next to), so the bound is `max_bytes` plus one flush of events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from library.events import Recorder, _lag_filled, read_part, schema, write_events_file
from library.stats import dictionary_codes

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

log = logging.getLogger(__name__)
HOUR_US = 3_600_000_000
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_HOUR = re.compile(r"hour=(\d{2})")
_COUNTER = itertools.count()


def parse_time(value: str, name: str) -> int:
    """ISO 8601 (no zone: UTC) or epoch seconds -> microseconds; ValueError naming `name`."""
    try:
        return int(float(value) * 1e6)
    except ValueError:
        pass
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name}: expected an ISO time (2026-11-30T08:00) or epoch seconds, got {value!r}"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1e6)


def partition_of(start_us: int) -> str:
    """`date=YYYY-MM-DD/hour=HH` of an event's start (UTC)."""
    at = dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC)
    return f"date={at:%Y-%m-%d}/hour={at:%H}"


def partition_start_us(path: Path) -> int | None:
    """Start of the hour a partition dir holds, or None for a dir that is not one."""
    hour = _HOUR.fullmatch(path.name)
    date = _PARTITION.fullmatch(path.parent.name)
    if not hour or not date:
        return None
    day = dt.datetime.strptime(date.group(1), "%Y-%m-%d").replace(tzinfo=dt.UTC)
    return int(day.timestamp()) * 1_000_000 + int(hour.group(1)) * HOUR_US


class PartitionedRecorder(Recorder):
    """The engine's recorder writing into hour partitions.

    `taps` are called with the recorder before each flush takes its columns away, so that
    an aggregator (the service's metrics) can read the rows it has not seen yet: nothing is
    added to the cost of recording one event.
    """

    def __init__(self, out_dir: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(out_dir, *args, **kwargs)
        self.taps: list[Callable[[Recorder], None]] = []
        self.parts_written = 0
        self.last_error: str | None = None

    def flush(self, wait: bool = True) -> Path | None:
        with self._lock:
            for tap in self.taps:
                tap(self)
            path = super().flush(wait)
            # The base class lists every file it wrote; a service writes for months.
            self.files.clear()
            return path

    def _claim_path(self) -> Path:
        # The real names are claimed per partition when the table is written.
        return self.out_dir

    def _write_table(self, table: pa.Table, path: Path) -> None:
        """Write `table` into the partitions of its rows' start times (`path` is the
        placeholder `_claim_path` gave)."""
        import numpy as np

        if not table.num_rows:
            return
        start = table.column("start_us").to_numpy()
        hours = start // HOUR_US
        if int(hours.min()) == int(hours.max()):
            self._write_part(table, int(start.min()))
            return
        for hour in np.unique(hours):
            part = _rows_where(table, hours == hour)
            self._write_part(part, int(part.column("start_us").to_numpy().min()))

    def _write_part(self, table: pa.Table, first_us: int) -> None:
        directory = self.out_dir / partition_of(first_us)
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            name = f"part-s{self.shard:03d}-{first_us}-{os.getpid()}-{next(_COUNTER)}.parquet"
            path = directory / name
            try:
                fd = os.open(self._tmp(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            except FileNotFoundError:
                # The retention removed the (then empty) dir between mkdir and claim; a claim
                # file keeps it from then on.
                directory.mkdir(parents=True, exist_ok=True)
                continue
            os.close(fd)
            break
        super()._write_table(table, path)
        self.parts_written += 1


@dataclass
class Partition:
    path: Path
    start_us: int

    @property
    def end_us(self) -> int:
        return self.start_us + HOUR_US


@dataclass
class RetentionResult:
    removed_files: int
    removed_bytes: int
    kept_files: int
    kept_bytes: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class EventStore:
    """Reading, sizing, compacting and trimming a partitioned events directory.

    Reads and compactions of one store object exclude each other (a read never sees a
    partition half compacted); another process reading the directory may, for the moment
    between the compacted file's rename and the removal of its parts.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.lock = threading.Lock()

    def partitions(self) -> list[Partition]:
        """Every hour partition, oldest first."""
        out: list[Partition] = []
        if not self.root.is_dir():
            return out
        for day in self.root.iterdir():
            if not day.is_dir() or not _PARTITION.fullmatch(day.name):
                continue
            for hour in day.iterdir():
                start = partition_start_us(hour)
                if start is not None and hour.is_dir():
                    out.append(Partition(hour, start))
        out.sort(key=lambda p: p.start_us)
        return out

    def files(self, since_us: int | None = None, until_us: int | None = None) -> list[Path]:
        """Part files of the partitions overlapping [since, until), oldest first."""
        out: list[Path] = []
        for part in self.partitions():
            if since_us is not None and part.end_us <= since_us:
                continue
            if until_us is not None and part.start_us >= until_us:
                continue
            out.extend(sorted(part.path.glob("*.parquet")))
        return out

    def size(self) -> tuple[int, int]:
        """(files, bytes) of every part file."""
        files = total = 0
        for path in self.files():
            try:
                total += path.stat().st_size
                files += 1
            except FileNotFoundError:
                pass
        return files, total

    def read(
        self,
        since_us: int | None = None,
        until_us: int | None = None,
        columns: Iterable[str] | None = None,
    ) -> pa.Table:
        """Events that started in [since, until) as one table of the events schema (or of
        `columns` of it)."""
        import pyarrow as pa

        full = schema()
        wanted = list(columns) if columns is not None else full.names
        read_cols = list(dict.fromkeys([*wanted, "start_us"]))
        sub = pa.schema([full.field(c) for c in read_cols])
        tables = []
        with self.lock:
            for path in self.files(since_us, until_us):
                try:
                    table = read_part(path, read_cols)
                except FileNotFoundError:  # removed by retention since it was listed
                    continue
                tables.append(table)
        out = []
        for table in tables:
            table = _in_range(table, since_us, until_us, "lag_us" in read_cols)
            table = table.select(read_cols)
            # Table.cast loads Arrow's compute functions even when there is nothing to cast.
            out.append(table if table.schema.equals(sub) else table.cast(sub))
        if not out:
            return sub.empty_table().select(wanted)
        return pa.concat_tables(out).select(wanted)

    def count_rows(self, since_us: int | None = None, until_us: int | None = None) -> int:
        """Rows of the files of the partitions overlapping the range (from their footers: an
        upper bound of the rows in the range, read without reading the data)."""
        import pyarrow.parquet as pq

        total = 0
        for path in self.files(since_us, until_us):
            try:
                total += pq.ParquetFile(path).metadata.num_rows
            except (FileNotFoundError, OSError):
                continue
        return total

    def read_sample(
        self,
        since_us: int | None,
        until_us: int | None,
        columns: Iterable[str],
        stride: int,
    ) -> tuple[pa.Table, dict[tuple[str, str], list[int]]]:
        """Every `stride`-th event of the range (a uniform sample, in bounded memory: files
        are read in batches), and the exact [count, failures] of every (flock, operation)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        full = schema()
        wanted = list(columns)
        read_cols = list(dict.fromkeys([*wanted, "start_us", "flock", "operation", "success"]))
        sub = pa.schema([full.field(c) for c in read_cols])
        counts: dict[tuple[str, str], list[int]] = {}
        kept: list[pa.Table] = []
        offset = 0
        with self.lock:
            for path in self.files(since_us, until_us):
                try:
                    batches = pq.ParquetFile(path).iter_batches(500_000, columns=read_cols)
                    for batch in batches:
                        table = pa.Table.from_batches([batch])
                        table = _in_range(table, since_us, until_us, "lag_us" in read_cols)
                        n = table.num_rows
                        if not n:
                            continue
                        _count_by_flock_operation(table, counts)
                        first = (-offset) % stride
                        take = np.arange(first, n, stride)
                        offset += n
                        if len(take):
                            rows = _rows_at(table.select(read_cols), take)
                            kept.append(rows if rows.schema.equals(sub) else rows.cast(sub))
                except FileNotFoundError:  # removed by retention since it was listed
                    continue
        if not kept:
            return sub.empty_table().select(wanted), counts
        return pa.concat_tables(kept).select(wanted), counts

    def compact(self, before_us: int) -> int:
        """Merge the part files of each partition that ended before `before_us` into one
        (`compact-*.parquet`): a flush every 10 s makes 360 files an hour, which a month of
        reading would open one by one. Returns how many files were merged away."""
        merged = 0
        for part in self.partitions():
            if part.end_us > before_us:
                break
            files = sorted(part.path.glob("*.parquet"))
            if len(files) < 2:
                continue
            with self.lock:
                target = (
                    part.path / f"compact-{part.start_us}-{os.getpid()}-{next(_COUNTER)}.parquet"
                )
                newest = max(map(_mtime, files))
                # One file in memory at a time: an hour of a busy service is millions of
                # events (a 5-minute soak's hour, merged whole, grew the service by 50 MiB).
                tables = (t for t in map(_read_or_none, files) if t is not None)
                if not write_events_file(tables, target):
                    continue
                # Retention by age reads a file's mtime as its last event's time.
                os.utime(target, (newest, newest))
                for path in files:
                    _unlink(path)
                merged += len(files) - 1
        return merged

    def enforce(
        self, max_age_s: float | None, max_bytes: int | None, now: float | None = None
    ) -> RetentionResult:
        """Remove what is older than `max_age_s`, then the oldest files above `max_bytes`."""
        now = time.time() if now is None else now
        removed_files = removed_bytes = 0
        horizon_us = None if max_age_s is None else int((now - max_age_s) * 1e6)
        kept: list[tuple[Path, int]] = []
        for part in self.partitions():
            if horizon_us is not None and part.end_us <= horizon_us:
                n, size = _tree_size(part.path)
                shutil.rmtree(part.path, ignore_errors=True)
                removed_files += n
                removed_bytes += size
                continue
            for path in sorted(part.path.glob("*.parquet")):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                # A file's mtime is when its last event was written: all of them are older.
                if horizon_us is not None and stat.st_mtime * 1e6 <= horizon_us:
                    _unlink(path)
                    removed_files += 1
                    removed_bytes += stat.st_size
                    continue
                kept.append((path, stat.st_size))
        if max_bytes is not None:
            total = sum(size for _, size in kept)
            # Oldest first, by partition then by the first start in the name; never the newest.
            kept.sort(key=lambda item: (item[0].parent.parent.name, item[0].parent.name,
                                        _first_us(item[0])))  # fmt: skip
            while total > max_bytes and len(kept) > 1:
                path, size = kept.pop(0)
                _unlink(path)
                removed_files += 1
                removed_bytes += size
                total -= size
        self._remove_empty()
        return RetentionResult(
            removed_files, removed_bytes, len(kept), sum(size for _, size in kept)
        )

    def _remove_empty(self) -> None:
        for part in self.partitions():
            if not any(part.path.glob("*.parquet")) and not _recent_tmp(part.path):
                shutil.rmtree(part.path, ignore_errors=True)
        if self.root.is_dir():
            for day in self.root.iterdir():
                if day.is_dir() and _PARTITION.fullmatch(day.name) and not any(day.iterdir()):
                    with contextlib.suppress(OSError):
                        day.rmdir()


def _rows_where(table: pa.Table, mask: np.ndarray) -> pa.Table:
    """TABLE's rows where MASK, cut out as runs of slices: `Table.filter` would load Arrow's
    compute functions into the service for good (~10 MiB, a step in its memory at the first
    flush across an hour). Rows come nearly in start order, so the runs are few."""
    import numpy as np
    import pyarrow as pa

    edges = np.flatnonzero(np.diff(mask.astype(np.int8), prepend=0, append=0))
    runs = [table.slice(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return pa.concat_tables(runs).combine_chunks()


def _count_by_flock_operation(table: pa.Table, counts: dict[tuple[str, str], list[int]]) -> None:
    """Add TABLE's [events, failures] per (flock, operation) to COUNTS, in numpy: Arrow's
    group_by would load its compute functions into the service for good (~10 MiB)."""
    import numpy as np

    flock, flocks = dictionary_codes(table.column("flock"))
    operation, operations = dictionary_codes(table.column("operation"))
    success = table.column("success").to_numpy()
    key = flock * len(operations) + operation
    size = len(flocks) * len(operations)
    events = np.bincount(key, minlength=size)
    failures = np.bincount(key[~success], minlength=size)
    for index in np.flatnonzero(events):
        f, o = divmod(int(index), len(operations))
        entry = counts.setdefault((flocks[f], operations[o]), [0, 0])
        entry[0] += int(events[index])
        entry[1] += int(failures[index])


def _rows_at(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """TABLE's rows at INDICES, column by column through numpy (`Table.take` would load Arrow's
    compute functions). A column with nulls, which numpy cannot hold as they are, goes through
    `take`: only files written before `lag_us` existed have any."""
    import pyarrow as pa

    if any(column.null_count for column in table.columns):
        return table.take(pa.array(indices))
    arrays = []
    for column in table.combine_chunks().columns:
        chunk = column.chunk(0) if column.num_chunks else pa.array([], column.type)
        if pa.types.is_dictionary(chunk.type):
            picked = pa.array(chunk.indices.to_numpy()[indices], chunk.type.index_type)
            arrays.append(pa.DictionaryArray.from_arrays(picked, chunk.dictionary))
        else:
            values = chunk.to_numpy(zero_copy_only=False)[indices]
            arrays.append(pa.array(values, chunk.type))
    return pa.Table.from_arrays(arrays, schema=table.schema)


def _in_range(table: pa.Table, since_us: int | None, until_us: int | None, lag: bool) -> pa.Table:
    """TABLE's rows that started in [since_us, until_us) (an open end when None), with
    `lag_us` filled in for files written before it existed when LAG."""
    import numpy as np

    if lag:
        table = _lag_filled(table)
    if since_us is None and until_us is None:
        return table
    start = table.column("start_us").to_numpy()
    mask = np.ones(len(start), bool)
    if since_us is not None:
        mask &= start >= since_us
    if until_us is not None:
        mask &= start < until_us
    if mask.all():
        return table
    return _rows_where(table, mask) if mask.any() else table.slice(0, 0)


def _first_us(path: Path) -> int:
    parts = path.name.split("-")
    try:
        return int(parts[1] if parts[0] == "compact" else parts[2])
    except (IndexError, ValueError):
        return 0


def _tree_size(path: Path) -> tuple[int, int]:
    n = size = 0
    for f in path.glob("*.parquet"):
        try:
            size += f.stat().st_size
            n += 1
        except FileNotFoundError:
            pass
    return n, size


def _recent_tmp(path: Path) -> bool:
    """A write under way (its hidden claim file) keeps the partition dir."""
    return any(path.glob(".*.tmp"))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by retention since it was listed
        return 0.0


def _read_or_none(path: Path) -> pa.Table | None:
    try:
        return read_part(path)
    except FileNotFoundError:  # removed by retention since it was listed
        return None


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
