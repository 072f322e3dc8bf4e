"""Synthetic artifact trees shaped like a real `ci/run`, for tests and benchmarks.

The tree follows docs/architecture.md: a prepare step that spawns labs, a test step with a
`scale run` (events, engine health, summary.json), a notebook run and a failing TAP query set
with its FAILURE file. Events are generated a million rows at a time with numpy and written with
the same schema as `library.events`, so the reader sees exactly what the engine writes.
"""

from __future__ import annotations

import json
from pathlib import Path

# operation, flock, business, median ms, share of the scale run's events
_SCALE_OPS = (
    ("empty_loop", "empty", "EmptyLoop", 2.0, 0.55),
    ("execute_code", "python", "NubladoPythonLoop", 45.0, 0.25),
    ("tap_query", "tap", "TAPQueryRunner", 80.0, 0.20),
)
_TAP_TEMPLATES = ("cone_small", "cone_large", "tap_schema", "object_by_id", "async_join")
_ERRORS = (
    ("TimeoutError", "operation timed out after 30 s"),
    ("ClientResponseError", "502 Bad Gateway from /nb/hub/api/users/bot-17/server"),
    ("DALQueryError", 'Query failed: relation "dp02.object" does not exist'),
)
_START_US = 1_780_000_000_000_000  # a fixed day keeps fixtures byte-stable


def write_run(
    root: str | Path,
    n_events: int = 100_000,
    *,
    seed: int = 0,
    duration_s: float = 600.0,
    monkeys: int = 100,
    failure_rate: float = 0.02,
    all_failed: bool = False,
    client_bound: bool = False,
    chunk_rows: int = 1_000_000,
    slowdown: float = 1.0,
    project: str = "synthetic",
) -> Path:
    """Write a whole `ci/run`-shaped tree under `root` and return it."""
    import numpy as np

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rate = 1.0 if all_failed else failure_rate
    _write(
        root / "config.yaml",
        "project:\n  name: synthetic\ntests:\n  scale:\n"
        f"    users: {monkeys}\n    duration: {int(duration_s)}\n",
    )
    _write(root / "presets_applied", "scale_small\nsynthetic\n")
    _write(root / "variable_overrides.yaml", f"tests.scale.users: {monkeys}\n")
    _write(root / "ci_run.yaml", f"project: {project}\nstep: test\n")

    end_us = _START_US + int(duration_s * 1e6)
    spawn = root / "000__prepare" / "000__nublado__spawn_lab"
    labs = min(monkeys, 50)
    _command(
        spawn,
        "nublado",
        "spawn_lab",
        _START_US - 120_000_000,
        _START_US - 5_000_000,
        failed=all_failed,
    )
    _events_simple(
        spawn / "events",
        rng,
        "spawn_lab",
        "nublado",
        labs,
        _START_US - 120_000_000,
        3500.0,
        rate,
        targets=("recommended",),
    )

    scale = root / "001__test" / "000__scale__run"
    _command(scale, "scale", "run", _START_US, end_us, failed=all_failed)
    _write(
        scale / "flocks.yaml",
        "".join(
            f"- name: {flock}\n  count: {monkeys // 3}\n  business:\n    type: {business}\n"
            for _, flock, business, _, _ in _SCALE_OPS
        ),
    )
    summary = _scale_events(
        scale / "events", rng, n_events, monkeys, duration_s, rate, chunk_rows, slowdown
    )
    _health(scale / "health", rng, monkeys, duration_s, client_bound)
    summary.update(
        start=_iso(_START_US),
        end=_iso(end_us),
        duration_s=duration_s,
        client_bound=client_bound,
        client_bound_reason=("event-loop lag p99 above 100 ms for 42 s" if client_bound else None),
    )
    _write(scale / "summary.json", json.dumps(summary, indent=1))
    _write(scale / "summary.txt", f"{n_events} events\n")

    nb = root / "001__test" / "001__notebook__run"
    _command(nb, "notebook", "run", end_us, end_us + 40_000_000, failed=all_failed)
    _notebook_events(nb / "events", rng, end_us, rate)

    tap = root / "001__test" / "002__tap__run_query_set"
    _command(tap, "tap", "run_query_set", end_us + 40_000_000, end_us + 70_000_000, failed=True)
    _events_simple(
        tap / "events",
        rng,
        "tap_query",
        "tap",
        60,
        end_us + 40_000_000,
        120.0,
        max(rate, 0.2),
        targets=_TAP_TEMPLATES,
        rows=True,
    )

    _write(root / "FAILURES", "001__test/002__tap__run_query_set/FAILURE\n")
    _write(root / "exit_code", "1\n")
    _write(root / "FINISHED", "")
    return root


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _iso(us: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds")


def _command(
    path: Path, group: str, command: str, start_us: int, end_us: int, failed: bool
) -> None:
    error = f"{command}: 12 of 60 queries failed; see events" if failed else None
    result = {
        "group": group,
        "command": command,
        "suffix": "",
        "status": "failure" if failed else "success",
        "start": _iso(start_us),
        "end": _iso(end_us),
        "duration_s": (end_us - start_us) / 1e6,
        "error": error,
        "result": None,
    }
    _write(path / "result.json", json.dumps(result, indent=1))
    _write(path / "args.yaml", "token: '*****'\n")
    _write(path / "command.sh", f"./run_toolbox.py {group} {command}\n")
    _write(path / "log.txt", f"{_iso(start_us)} INFO {group} {command} started\n")
    _write(path / "exit_code", "1\n" if failed else "0\n")
    if failed:
        _write(path / "FAILURE", f"{error}\n")


def _table(
    start,
    duration,
    flock,
    business,
    operation,
    targets,
    target_codes,
    ok,
    err_codes,
    monkeys,
    monkey_codes,
    rows,
):
    import numpy as np
    import pyarrow as pa

    from library.events import schema

    n = len(start)
    err_messages = pa.array([""] + [m for _, m in _ERRORS])
    codes = np.where(ok, 0, err_codes + 1).astype(np.int32)

    def dict_col(values, idx):
        return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), pa.array(values))

    def const(value):
        return dict_col([value], np.zeros(n, np.int32))

    return pa.Table.from_arrays(
        [
            pa.array(start),
            pa.array(duration),
            flock if isinstance(flock, pa.Array) else const(flock),
            dict_col(monkeys, monkey_codes),
            business if isinstance(business, pa.Array) else const(business),
            operation if isinstance(operation, pa.Array) else const(operation),
            dict_col(list(targets), target_codes),
            dict_col([""] + [c for c, _ in _ERRORS], codes),
            pa.array(ok),
            err_messages.take(pa.array(codes)),
            pa.array(rows),
            pa.array(np.zeros(n, np.int16)),
        ],
        schema=schema(),
    )


def _write_table(out: Path, index: int, table) -> None:
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / f"part-{index:05d}.parquet", compression="zstd")


def _failures(rng, n, rate, start_frac):
    """Failures at `rate`, plus a burst in the middle of the run so the plots show one."""
    import numpy as np

    if rate >= 1.0:
        return np.zeros(n, bool)
    burst = (start_frac > 0.6) & (start_frac < 0.65)
    return ~((rng.random(n) < rate) | (burst & (rng.random(n) < 0.3)))


def _events_simple(out, rng, operation, group, n, start_us, median_ms, rate, targets, rows=False):
    import numpy as np

    start = start_us + np.sort(rng.integers(0, 30_000_000, n))
    duration = (median_ms * 1000 * rng.lognormal(0, 0.4, n)).astype(np.int64)
    ok = _failures(rng, n, rate, np.zeros(n))
    target_codes = rng.integers(0, len(targets), n)
    monkeys = [f"bot-{i}" for i in range(n)]
    nrows = np.where(ok, rng.integers(1, 5000, n), -1) if rows else np.full(n, -1)
    _write_table(
        out,
        0,
        _table(
            start,
            duration,
            group,
            group,
            operation,
            targets,
            target_codes,
            ok,
            rng.integers(0, len(_ERRORS), n),
            monkeys,
            np.arange(n),
            nrows.astype(np.int64),
        ),
    )


def _scale_events(out, rng, n_events, monkeys, duration_s, rate, chunk_rows, slowdown=1.0) -> dict:
    import numpy as np
    import pyarrow as pa

    ops = pa.array([o for o, *_ in _SCALE_OPS])
    flocks = pa.array([f for _, f, *_ in _SCALE_OPS])
    businesses = pa.array([b for _, _, b, *_ in _SCALE_OPS])
    medians = np.array([m for *_, m, _ in _SCALE_OPS]) * 1000 * slowdown
    shares = np.array([s for *_, s in _SCALE_OPS])
    names = [f"bot-{i}" for i in range(monkeys)]
    targets = ("",) + _TAP_TEMPLATES
    stats = {f: {"count": 0, "failures": 0} for _, f, *_ in _SCALE_OPS}
    span = int(duration_s * 1e6)
    # Monkey start/stop events bracket the run, so "active monkeys" can be derived from events.
    lifecycle = 2 * monkeys
    index = 0
    remaining = n_events
    first = True
    while remaining > 0 or first:
        n = min(chunk_rows, remaining)
        lo, hi = (
            (n_events - remaining) / max(n_events, 1),
            (n_events - remaining + n) / max(n_events, 1),
        )
        start_frac = np.sort(rng.uniform(lo, hi, n))
        start = _START_US + (start_frac * span).astype(np.int64)
        op = rng.choice(len(_SCALE_OPS), n, p=shares)
        # Latency creeps up over the run as load ramps, which the over-time plots should show.
        slow = 1 + 1.5 * start_frac
        duration = (medians[op] * slow * rng.lognormal(0, 0.5, n)).astype(np.int64)
        ok = _failures(rng, n, rate, start_frac)
        tap = op == 2
        target_codes = np.where(tap, rng.integers(1, len(targets), n), 0)
        nrows = np.where(tap & ok, rng.integers(1, 10_000, n), -1).astype(np.int64)
        table = _table(
            start,
            duration,
            flocks.take(pa.array(op)),
            businesses.take(pa.array(op)),
            ops.take(pa.array(op)),
            targets,
            target_codes,
            ok,
            rng.integers(0, len(_ERRORS), n),
            names,
            rng.integers(0, monkeys, n),
            nrows,
        )
        if first and lifecycle:
            table = pa.concat_tables([_lifecycle(rng, names, span), table])
            first = False
        first = False
        _write_table(out, index, table)
        for i, (_, flock, *_rest) in enumerate(_SCALE_OPS):
            mask = op == i
            stats[flock]["count"] += int(mask.sum())
            stats[flock]["failures"] += int((mask & ~ok).sum())
        index += 1
        remaining -= n
    return {
        "flocks": {
            flock: {
                "monkeys": monkeys // 3,
                "business": business,
                "started": monkeys // 3,
                "successes": stats[flock]["count"] - stats[flock]["failures"],
                "failures": stats[flock]["failures"],
            }
            for _, flock, business, *_ in _SCALE_OPS
        }
    }


def _lifecycle(rng, names, span):
    """monkey_start during a ramp-up over the first 10 %, monkey_stop at the end."""
    import numpy as np

    n = len(names)
    starts = _START_US + np.sort(rng.integers(0, span // 10, n))
    stops = _START_US + span - rng.integers(0, span // 50 + 1, n)
    start = np.concatenate([starts, stops])
    ops = np.repeat([0, 1], n)
    import pyarrow as pa

    flock = pa.array(["empty"] * 2 * n).dictionary_encode()
    lifecycle_ops = pa.DictionaryArray.from_arrays(
        pa.array(ops.astype(np.int32)), pa.array(["monkey_start", "monkey_stop"])
    )
    return _table(
        start,
        np.full(2 * n, 1000, np.int64),
        flock,
        "scale",
        lifecycle_ops,
        ("",),
        np.zeros(2 * n, np.int32),
        np.ones(2 * n, bool),
        np.zeros(2 * n, np.int64),
        names,
        np.tile(np.arange(n), 2),
        np.full(2 * n, -1, np.int64),
    )


def _health(out, rng, monkeys, duration_s, client_bound):
    import numpy as np
    import pyarrow as pa

    n = max(int(duration_s), 1)
    t = _START_US + np.arange(n, dtype=np.int64) * 1_000_000
    frac = np.arange(n) / n
    active = np.minimum(monkeys, np.ceil(monkeys * frac / 0.1)).astype(np.int64)
    active[frac > 0.98] = 0
    lag = rng.gamma(2, 4 if not client_bound else 60, n)
    table = pa.table(
        {
            "time_us": t,
            "loop_lag_max_ms": lag * 2,
            "loop_lag_p99_ms": lag,
            "cpu_percent": np.clip(
                40 + 50 * frac + rng.normal(0, 5, n) + (40 if client_bound else 0), 0, 100
            ),
            "rss_bytes": (150e6 + 1e6 * active).astype(np.int64),
            "active_monkeys": active,
            "shard": np.zeros(n, np.int16),
        }
    )
    _write_table(out, 0, table)


def _notebook_events(out, rng, start_us, rate):
    import numpy as np
    import pyarrow as pa

    notebooks = (
        "tutorials/01_intro.ipynb",
        "tutorials/02_catalog.ipynb",
        "tutorials/03_image.ipynb",
        "system-test/butler.ipynb",
    )
    cells_per = (4, 6, 8, 3)
    targets: list[str] = []
    ops: list[int] = []
    medians: list[float] = []
    for nb, cells in zip(notebooks, cells_per, strict=True):
        for c in range(cells):
            targets.append(f"{nb}#cell-{c}")
            ops.append(1)
            medians.append(float(rng.choice([50, 200, 900, 3000])))
        targets.append(nb)
        ops.append(0)
        medians.append(sum(medians[-cells:]) + 500)
    reps = 5
    n = len(targets) * reps
    idx = np.tile(np.arange(len(targets)), reps)
    start = start_us + np.sort(rng.integers(0, 40_000_000, n))
    duration = (np.array(medians)[idx] * 1000 * rng.lognormal(0, 0.2, n)).astype(np.int64)
    ok = _failures(rng, n, rate, np.zeros(n))
    op = pa.DictionaryArray.from_arrays(
        pa.array(np.array(ops)[idx].astype(np.int32)), pa.array(["notebook", "cell"])
    )
    monkeys = ["bot-nb"]
    _write_table(
        out,
        0,
        _table(
            start,
            duration,
            "notebook",
            "notebook",
            op,
            targets,
            idx,
            ok,
            rng.integers(0, len(_ERRORS), n),
            monkeys,
            np.zeros(n, np.int32),
            np.full(n, -1, np.int64),
        ),
    )
