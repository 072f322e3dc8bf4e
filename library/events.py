"""Timing events: one row per timed operation, kept in memory columns, flushed to Parquet.

The schema and the API are a contract with the post-mortem (see docs/architecture.md). Rows are
appended to `array` columns, because those turn into an Arrow table without touching each row
again; a list of tuples would be cheaper to append to but costs half a second per million rows
to convert, with the GIL held, which would stall the event loop that records them. The strings
of a row (flock, business, operation, target, error class, error) repeat in few combinations,
so a row stores one code for the combination and one for the monkey: two dictionary lookups
and six appends per row.

A full chunk is handed to a writer thread, so the Parquet encoding (which releases the GIL) does
not block the loop that keeps recording.

A recorder made with `spool=True` (the load engine's) writes its chunks as raw columns instead,
`part-NNNNN.spool` beside the Parquet name it has claimed, and encodes them once the load is
over (`encode`). Its process never loads pyarrow and numpy during the load: they cost ~50 MiB,
more than a thousand monkeys' own state. A spool left by a killed process is encoded by the
next reader that calls `encode_spools` on its directory (the scale run's summary, the report).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import sys
import threading
import time
from array import array
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from library.artifacts import EVENTS_DIR
from library.errors import one_line
from library.redact import redact_text

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow as pa

# Column order of the files; also the order of `Recorder.record`'s positional arguments.
STRING_COLUMNS = ("flock", "monkey", "business", "operation", "target", "error_class")
COLUMNS = (
    "start_us",
    "duration_us",
    "lag_us",
    *STRING_COLUMNS,
    "success",
    "error",
    "rows",
    "shard",
)
# `lag_us`: how late the operation started against its schedule (actual start - intended
# start, microseconds; 0 when not scheduled). Latency from the intended start, lag + duration,
# is the figure corrected for coordinated omission. Files written before the column existed
# read as 0.
ERROR_MAX_CHARS = 200
DEFAULT_CHUNK_ROWS = 100_000
SPOOL_SUFFIX = ".spool"
SPOOL_FORMAT = "bosun-events-spool/1"
# The buffer's columns, in `Recorder._new_columns`' order, as a spool holds them.
_BUFFER_TYPECODES = ("q", "q", "i", "i", "b", "q", "q")


def now_us() -> int:
    """Wall-clock time in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


# Distinct (flock, business, operation, target, error class, error text) a recorder keeps a
# code for; past it, new error texts are recorded as ERROR_TEXT_DROPPED (about 300 bytes each:
# ~15 MiB at the bound).
MAX_COMBINATIONS = 50_000
ERROR_TEXT_DROPPED = "(error text not kept: too many distinct errors in this run)"


def short_error(exc: BaseException | str) -> str:
    """One line of at most ERROR_MAX_CHARS characters, with registered secrets masked."""
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    # Masked before the cut, so that a secret cut in half is still recognised.
    return one_line(_mask(one_line(text)), ERROR_MAX_CHARS)


def _mask(text: str) -> str:
    return redact_text(text)


class _Codes(dict):
    """Key -> small int, assigning the next code to a key seen for the first time."""

    __slots__ = ("keys_in_order",)

    def __init__(self) -> None:
        super().__init__()
        # Not `values`: that would hide dict.values().
        self.keys_in_order: list[Any] = []

    def __missing__(self, key) -> int:
        code = len(self.keys_in_order)
        self.keys_in_order.append(key)
        self[key] = code
        return code


class _Timed:
    """Context manager returned by `Recorder.timed`; `rows` may be set inside the block."""

    __slots__ = (
        "_rec",
        "_op",
        "_monkey",
        "_target",
        "_flock",
        "_business",
        "_start",
        "_t0",
        "rows",
        "lag_us",
    )

    def __init__(self, rec, op, monkey, target, flock, business, rows, lag_us=0):
        self._rec = rec
        self._op = op
        self._monkey = monkey
        self._target = target
        self._flock = flock
        self._business = business
        self.rows = rows
        self.lag_us = lag_us

    def __enter__(self) -> _Timed:
        self._start = time.time_ns() // 1000
        self._t0 = time.perf_counter_ns()
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is not None and not issubclass(exc_type, Exception):
            # Cancellation (a run stopping), Ctrl-C, interpreter exit: the operation did not
            # fail, it was abandoned; counting it would charge the platform for our stop.
            return False
        duration = (time.perf_counter_ns() - self._t0) // 1000
        if exc_type is None:
            self._rec.record(
                self._op,
                self._start,
                duration,
                True,
                self._monkey,
                self._target,
                "",
                "",
                self.rows,
                self._flock,
                self._business,
                self.lag_us,
            )
        else:
            self._rec.record(
                self._op,
                self._start,
                duration,
                False,
                self._monkey,
                self._target,
                exc_type.__name__,
                short_error(exc) if exc is not None else "",
                self.rows,
                self._flock,
                self._business,
                self.lag_us,
            )
        return False


class Channel:
    """One (operation, monkey, target) of a recorder: `ok` appends a success with the codes of
    its strings looked up once; `fail` goes through `Recorder.record` (errors vary)."""

    __slots__ = ("_rec", "_op", "_monkey", "_target", "_flock", "_business", "_codes")

    def __init__(self, rec, op, monkey, target, flock, business) -> None:
        self._rec = rec
        self._op = op
        self._monkey = monkey
        self._target = target
        self._flock = rec.flock if flock is None else flock
        self._business = rec.business if business is None else business
        combo = (self._flock, self._business, op, target, "", "")
        # Codes are kept for the recorder's lifetime (flushes snapshot, never reset them).
        self._codes = (rec._monkeys[monkey], rec._combos[combo])

    def ok(self, start_us: int, duration_us: int, lag_us: int = 0) -> None:
        rec = self._rec
        if rec._threadsafe:
            rec.record(
                self._op, start_us, duration_us, True, self._monkey, self._target,
                flock=self._flock, business=self._business, lag_us=lag_us,
            )  # fmt: skip
            return
        a_start, a_duration, a_monkey, a_combo, a_success, a_rows, a_lag = rec._appenders
        monkey, combo = self._codes
        a_start(start_us)
        a_duration(duration_us)
        a_monkey(monkey)
        a_combo(combo)
        a_success(True)
        a_rows(-1)
        a_lag(lag_us)
        if len(rec._start) >= rec.chunk_rows:
            rec.flush(wait=False)

    def fail(self, start_us: int, duration_us: int, exc: BaseException, lag_us: int = 0) -> None:
        self._rec.record(
            self._op,
            start_us,
            duration_us,
            False,
            self._monkey,
            self._target,
            type(exc).__name__,
            short_error(exc),
            flock=self._flock,
            business=self._business,
            lag_us=lag_us,
        )


class Recorder:
    """Buffers timing events and writes them as `out_dir/part-NNNNN.parquet` files.

    One recorder may be shared by any number of asyncio tasks and threads. Several recorders
    (several shards, several commands) may write into the same directory: file names are
    claimed with an exclusive create, and a file only appears under its final name once it is
    complete.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        flock: str = "",
        business: str = "",
        *,
        shard: int = 0,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        threadsafe: bool = False,
        spool: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.spool = spool
        self.flock = flock
        self.business = business
        self.shard = shard
        self.chunk_rows = chunk_rows
        self.rows_recorded = 0
        self.files: list[Path] = []
        self._monkeys = _Codes()
        self._combos = _Codes()  # (flock, business, operation, target, error_class, error)
        self.max_combinations = MAX_COMBINATIONS
        self._lock = threading.RLock()
        self._threadsafe = threadsafe
        if threadsafe:
            self.record = self._record_locked  # type: ignore[method-assign]
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._closed = False
        self._new_columns()

    def _new_columns(self) -> None:
        # start_us, duration_us, monkey code, combination code, success, rows, lag_us
        self._columns = tuple(array(code) for code in _BUFFER_TYPECODES)
        self._start = self._columns[0]
        # Bound methods, unpacked in one step per row: cheaper than six attribute lookups.
        self._appenders = tuple(column.append for column in self._columns)

    def __len__(self) -> int:
        """Rows buffered and not yet handed to a writer."""
        return len(self._start)

    def record(
        self,
        operation: str,
        start_us: int,
        duration_us: int,
        success: bool = True,
        monkey: str = "",
        target: str = "",
        error_class: str = "",
        error: str = "",
        rows: int = -1,
        flock: str | None = None,
        business: str | None = None,
        lag_us: int = 0,
    ) -> None:
        """Buffer one event; `flock` and `business` default to the recorder's own.

        Safe from any number of tasks of one event loop (the body never awaits). A recorder
        built with `threadsafe=True` may also be shared by threads.
        """
        a_start, a_duration, a_monkey, a_combo, a_success, a_rows, a_lag = self._appenders
        a_start(start_us)
        a_duration(duration_us)
        a_monkey(self._monkeys[monkey])
        key = (
            self.flock if flock is None else flock,
            self.business if business is None else business,
            operation,
            target,
            error_class,
            error,
        )
        if error and len(self._combos) >= self.max_combinations and key not in self._combos:
            # Codes live as long as the recorder: in a service that runs for months, error
            # texts holding ids or times would grow them without end. Past the bound a new
            # text is dropped; its class, and the texts already seen, are still recorded.
            key = (*key[:5], ERROR_TEXT_DROPPED)
        a_combo(self._combos[key])
        a_success(success)
        a_rows(rows)
        a_lag(lag_us)
        if len(self._start) >= self.chunk_rows:
            self.flush(wait=False)

    def channel(
        self,
        operation: str,
        monkey: str = "",
        target: str = "",
        *,
        flock: str | None = None,
        business: str | None = None,
    ) -> Channel:
        """A recorder of one (operation, monkey, target) whose successes cost six appends:
        the string codes are looked up once here, not per event."""
        return Channel(self, operation, monkey, target, flock, business)

    def prepare(self) -> None:
        """Load and set up the Parquet writer now (~50 MiB): a recorder that encodes as it goes
        (the standing service's) calls this before its flocks start, so that its first flush
        does not grow the process mid-run. A spooling recorder has no use for it."""
        _arrow()
        import pyarrow.parquet as pq

        # One empty write sets the writer up (its codecs hold ~14 MiB) before the load starts.
        pq.write_table(schema().empty_table(), io.BytesIO(), compression="zstd")

    def _record_locked(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            Recorder.record(self, *args, **kwargs)

    def timed(
        self,
        operation: str,
        monkey: str = "",
        target: str = "",
        *,
        flock: str | None = None,
        business: str | None = None,
        rows: int = -1,
        lag_us: int = 0,
    ) -> _Timed:
        """Time the block; an exception records a failure with its class and re-raises.

        `with rec.timed("tap_query", target="cone") as t: ...; t.rows = n` records the rows.
        """
        return _Timed(self, operation, monkey, target, flock, business, rows, lag_us)

    def record_failure(
        self,
        operation: str,
        start_us: int,
        duration_us: int,
        exc: BaseException,
        monkey: str = "",
        target: str = "",
        **kwargs: Any,
    ) -> None:
        """Record a failed operation from the exception that ended it."""
        self.record(
            operation,
            start_us,
            duration_us,
            False,
            monkey,
            target,
            type(exc).__name__,
            short_error(exc),
            **kwargs,
        )

    def flush(self, wait: bool = True) -> Path | None:
        """Write what is buffered as one part file; with `wait=False` the write runs in a thread.

        Returns the path of the file (its final name) or None when nothing was buffered.
        """
        with self._lock:
            if not self._start:
                return None
            columns = self._columns
            # Snapshot the dictionaries: later rows may add codes while the writer runs.
            dictionaries = (list(self._monkeys.keys_in_order), list(self._combos.keys_in_order))
            self._new_columns()
        path = self._claim_path()
        write = self._spool if self.spool else self._write
        if wait:
            write(columns, dictionaries, path)
        else:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._writer().submit(write, columns, dictionaries, path))
        self.files.append(path)
        return path

    def close(self, encode: bool = True) -> list[Path]:
        """Flush, wait for every background write, and release the writer thread; then, for a
        spooling recorder, encode its spools unless `encode=False` (`encode` does it later)."""
        self.flush(wait=True)
        self.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._closed = True
        if encode:
            self.encode()
        return list(self.files)

    def encode(self) -> None:
        """Write this recorder's spooled chunks as its Parquet files (after `close`)."""
        if self.spool:
            for path in self.files:
                encode_spool(spool_path(path))

    def wait(self) -> None:
        """Block until every background write finished; re-raises a write error."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _writer(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-writer")
        return self._executor

    def _claim_path(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        prefix = "part-" if self.shard == 0 else f"part-s{self.shard:03d}-"
        index = len(self.files)
        while True:
            path = self.out_dir / f"{prefix}{index:05d}.parquet"
            try:
                # The claim is an empty hidden marker; the data file appears by rename.
                fd = os.open(self._tmp(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                index += 1
                continue
            os.close(fd)
            if path.exists():
                os.unlink(self._tmp(path))
                index += 1
                continue
            return path

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name("." + path.name + ".tmp")

    def write_columns(self, columns: dict[str, Any]) -> Path:
        """Write whole columns as one part file at once (generators of large synthetic runs).

        Each value is an array (numpy, Arrow, list) of one length, or one value for every row.
        A column left out takes `record`'s default for it (read from its signature, so a column
        added there is filled here too), the recorder's flock and business, and this shard.
        """
        import pyarrow as pa

        unknown = sorted(set(columns) - set(COLUMNS))
        if unknown:
            raise ValueError(f"no events column {unknown[0]!r} (columns: {', '.join(COLUMNS)})")
        defaults = {
            name: p.default
            for name, p in inspect.signature(Recorder.record).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        defaults |= {"flock": self.flock, "business": self.business, "shard": self.shard}
        missing = [c for c in COLUMNS if c not in columns and c not in defaults]
        if missing:
            raise ValueError(f"events column {missing[0]!r} has no default: give it")
        n = len(columns["start_us"])
        arrays = [_column(columns.get(f.name, defaults.get(f.name)), f.type, n) for f in schema()]
        path = self._claim_path()
        self._write_table(pa.Table.from_arrays(arrays, schema=schema()), path)
        self.files.append(path)
        return path

    def _write(self, columns, dictionaries, path: Path) -> None:
        self._write_table(_to_table(columns, dictionaries, self.shard), path)

    def _spool(self, columns, dictionaries, path: Path) -> None:
        write_spool(spool_path(path), columns, dictionaries, self.shard)

    def _write_table(self, table: pa.Table, path: Path) -> None:
        write_events_file([table], path)


def spool_path(path: Path) -> Path:
    """Where the chunk claimed as `path` (a `.parquet` name) waits, raw, to be encoded."""
    return path.with_suffix(SPOOL_SUFFIX)


def write_spool(path: Path, columns, dictionaries, shard: int) -> None:
    """One buffered chunk as a header line (JSON: rows, dictionaries, byte order) and the
    columns' machine bytes; it appears under its name only when complete."""
    monkeys, combos = dictionaries
    header = {
        "format": SPOOL_FORMAT,
        "rows": len(columns[0]),
        "shard": shard,
        "byteorder": sys.byteorder,
        "typecodes": [column.typecode for column in columns],
        "monkeys": monkeys,
        "combinations": combos,
    }
    tmp = Recorder._tmp(path)
    with open(tmp, "wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        for column in columns:
            out.write(column)
    os.replace(tmp, path)


def read_spool(path: Path) -> tuple[tuple[array, ...], tuple[list, list], int]:
    """A spool's (columns, dictionaries, shard), as `write_spool` was given them."""
    with open(path, "rb") as spool:
        try:
            header = json.loads(spool.readline())
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != SPOOL_FORMAT:
            raise ValueError(f"{path}: not an events spool ({SPOOL_FORMAT})")
        rows = header["rows"]
        columns = []
        for typecode in header["typecodes"]:
            column = array(typecode)
            data = spool.read(rows * column.itemsize)
            if len(data) != rows * column.itemsize:
                raise ValueError(f"{path}: truncated events spool")
            column.frombytes(data)
            if header["byteorder"] != sys.byteorder:
                column.byteswap()
            columns.append(column)
    combos = [tuple(key) for key in header["combinations"]]
    return tuple(columns), (header["monkeys"], combos), header["shard"]


def encode_spool(spool: Path) -> Path | None:
    """Encode one spool as the Parquet file it stands for and remove it; None when another
    process has claimed it first (a reader of a run that is still encoding its own)."""
    claimed = spool.with_name(f".{spool.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        os.rename(spool, claimed)  # one claimant wins; the others find it gone
    except FileNotFoundError:
        return None
    try:
        _arrow()
        columns, dictionaries, shard = read_spool(claimed)
        path = spool.with_suffix(".parquet")
        write_events_file([_to_table(columns, dictionaries, shard)], path)
    except BaseException:
        os.rename(claimed, spool)  # left as it was found: nothing lost
        raise
    os.unlink(claimed)
    return path


def encode_spools(directory: str | os.PathLike[str]) -> list[Path]:
    """Encode the spools in `directory` that a killed recorder left; the Parquet files
    written. A spool that cannot be read raises ValueError and stays."""
    root = Path(directory)
    if not root.is_dir():
        return []
    _reclaim_abandoned(root)
    return [p for s in sorted(root.glob("*" + SPOOL_SUFFIX)) if (p := encode_spool(s))]


_CLAIMED = re.compile(r"\.(?P<name>.+" + re.escape(SPOOL_SUFFIX) + r")\.(?P<pid>\d+)\.\d+")


def _reclaim_abandoned(root: Path) -> None:
    """Put back under its name a spool whose claimant died while encoding it."""
    for claimed in root.glob(f".*{SPOOL_SUFFIX}.*"):
        match = _CLAIMED.fullmatch(claimed.name)
        if match and not _alive(int(match["pid"])):
            with contextlib.suppress(FileNotFoundError):
                os.rename(claimed, root / match["name"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    return True


def _arrow() -> None:
    """Load pyarrow for writing, with the C allocator: it gives back what Arrow's default
    (mimalloc) keeps after each write (measured at 1,000 users: 134 instead of 155 MiB at a
    run's end). Chosen before pyarrow loads when it has not yet: mimalloc reserves memory as
    it starts."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def write_events_file(tables: Iterable[pa.Table], path: Path) -> bool:
    """Write `tables` (the events schema) in order as one file at `path`, a row group each, so
    that merging files holds one of them in memory at a time; the file appears under its name
    only when complete. False, and no file, when `tables` was empty."""
    import pyarrow.parquet as pq

    tmp = Recorder._tmp(path)
    writer = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(
                    tmp,
                    schema(),
                    compression="zstd",
                    use_dictionary=list(STRING_COLUMNS),
                    column_encoding={
                        "start_us": "DELTA_BINARY_PACKED",
                        "rows": "DELTA_BINARY_PACKED",
                    },
                )
            writer.write_table(table)
    except BaseException:
        if writer is not None:
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if writer is None:
        return False
    writer.close()
    os.replace(tmp, path)
    return True


def schema() -> pa.Schema:
    """The Arrow schema of every events file."""
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [
            ("start_us", pa.int64()),
            ("duration_us", pa.int64()),
            ("lag_us", pa.int64()),
            *[(name, text) for name in STRING_COLUMNS],
            ("success", pa.bool_()),
            ("error", pa.string()),
            ("rows", pa.int64()),
            ("shard", pa.int16()),
        ]
    )


def _column(value: Any, kind: pa.DataType, n: int) -> pa.Array:
    """VALUE (an array, or one value for all N rows) as an Arrow array of type KIND."""
    import numpy as np
    import pyarrow as pa

    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if not isinstance(value, pa.Array | np.ndarray | list | tuple):
        if pa.types.is_dictionary(kind):
            codes = pa.array(np.zeros(n, np.int32))
            return pa.DictionaryArray.from_arrays(codes, pa.array([value], pa.string()))
        return pa.repeat(pa.scalar(value, kind), n)
    array = value if isinstance(value, pa.Array) else pa.array(value)
    if len(array) != n:
        raise ValueError(f"events columns of different lengths ({len(array)} and {n})")
    if pa.types.is_dictionary(kind) and not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    return array if array.type == kind else array.cast(kind)


def _to_table(columns, dictionaries, shard: int) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    start, duration, monkey, combo, success, rows, lag = columns
    monkeys, combos = dictionaries
    n = len(start)
    combo_codes = np.frombuffer(combo, dtype=np.int32)
    # Split the combinations into one dictionary per column, then map every row's combination
    # code to that column's code with one vectorised take.
    fields = ("flock", "business", "operation", "target", "error_class", "error")
    per_field = {}
    for position, name in enumerate(fields):
        values: dict[str, int] = {}
        mapping = np.fromiter(
            (values.setdefault(key[position], len(values)) for key in combos),
            dtype=np.int32,
            count=len(combos),
        )
        per_field[name] = pa.DictionaryArray.from_arrays(
            pa.array(mapping[combo_codes]), pa.array(list(values), type=pa.string())
        )
    arrays = {
        "start_us": pa.array(np.frombuffer(start, dtype=np.int64)),
        "duration_us": pa.array(np.frombuffer(duration, dtype=np.int64)),
        "lag_us": pa.array(np.frombuffer(lag, dtype=np.int64)),
        "monkey": pa.DictionaryArray.from_arrays(
            pa.array(np.frombuffer(monkey, dtype=np.int32)), pa.array(monkeys, type=pa.string())
        ),
        **per_field,
        "success": pa.array(np.frombuffer(success, dtype=np.int8).astype(bool)),
        "rows": pa.array(np.frombuffer(rows, dtype=np.int64)),
        "shard": pa.array(np.full(n, shard, dtype=np.int16)),
    }
    # A plain string column, taken in numpy: Arrow's dictionary_decode would load its compute
    # kernels, 13 MiB more in every recording process for one column.
    errors = per_field["error"]
    arrays["error"] = pa.array(
        np.asarray(errors.dictionary.to_pylist() or [""], dtype=object)[
            errors.indices.to_numpy(zero_copy_only=False)
        ],
        type=pa.string(),
    )
    return pa.Table.from_arrays([arrays[name] for name in COLUMNS], schema=schema())


def read_events(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """All events under `path` (an `events/` dir, or a command dir holding one) as one table,
    every column or only `columns`."""
    import pyarrow as pa

    root = Path(path)
    if (root / EVENTS_DIR).is_dir():
        root = root / EVENTS_DIR
    files = sorted(root.rglob("*.parquet"))  # hour partitions too (library/eventstore.py)
    if not files:
        empty = schema().empty_table()
        return empty if columns is None else empty.select(columns)
    return pa.concat_tables([read_part(f, columns) for f in files])


def read_part(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """One events file in the current schema (or its `columns`), `lag_us` 0 where absent.

    Read with `ParquetFile`, not `pq.read_table`, and without `pyarrow.compute`: the dataset
    layer adds ~13 MiB to the process on first use, the compute functions' wrappers ~10; a
    scale run reads its events at its end, at its peak of memory.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    full = schema()
    wanted = list(full.names if columns is None else columns)
    parquet = pq.ParquetFile(path)
    present = set(parquet.schema_arrow.names)
    table = parquet.read(columns=[c for c in wanted if c in present])
    for name in wanted:
        if name not in present:  # written before the column existed
            field = full.field(name)
            if name != "lag_us":
                raise ValueError(f"{path}: events file without column {name!r}")
            zeros = pa.array(np.zeros(table.num_rows, np.int64), field.type)
            table = table.append_column(field, zeros)
    target = pa.schema([full.field(name) for name in wanted])
    table = table.select(wanted)
    return table if table.schema.equals(target) else table.cast(target)


def _lag_filled(table: pa.Table) -> pa.Table:
    """A file written before `lag_us` existed reads it as nulls: unscheduled, so 0."""
    lag = table.column("lag_us")
    if not lag.null_count:
        return table
    import pyarrow.compute as pc

    index = table.schema.get_field_index("lag_us")
    return table.set_column(index, "lag_us", pc.fill_null(lag, 0))
