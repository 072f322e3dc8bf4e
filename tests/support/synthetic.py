"""Synthetic artifact trees shaped like a real `ci/run`, for tests and benchmarks.

The tree follows docs/architecture.md: a prepare step that spawns labs, a test step with a
`scale run` (events, engine health, summary.json), a notebook run and a failing TAP query set
with its FAILURE file. Events are generated a million rows at a time with numpy and written with
the same writers as a real run (`library.events.Recorder.write_columns` for events, the engine's
`HealthSampler` for health, `library.artifacts.CommandResult` for results, the scale run's own
summary writer), so the tree cannot drift from what bosun writes.
"""

from __future__ import annotations

from pathlib import Path

from library import artifacts
from library.artifacts import CommandResult, Operation, ScaleRunDir

# operation, flock, business, median ms, share of the scale run's events
_SCALE_OPS = (
    (Operation.EMPTY_LOOP, "empty", "EmptyLoop", 2.0, 0.55),
    (Operation.EXECUTE_CODE, "python", "NubladoPythonLoop", 45.0, 0.25),
    (Operation.TAP_QUERY, "tap", "TAPQueryRunner", 80.0, 0.20),
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
        root / artifacts.CONFIG,
        "project:\n  name: synthetic\ntests:\n  scale:\n"
        f"    users: {monkeys}\n    duration: {int(duration_s)}\n",
    )
    _write(root / artifacts.PRESETS_APPLIED, "scale_small\nsynthetic\n")
    # The CI's input and, as ci/run writes it, the snapshot of the overrides it applied.
    _write(root / artifacts.VARIABLE_OVERRIDES, f"tests.scale.users: {monkeys}\n")
    _write(root / artifacts.OVERRIDES_APPLIED, f"tests.scale.users: {monkeys}\n")
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
        spawn / artifacts.EVENTS_DIR,
        rng,
        Operation.SPAWN_LAB,
        "nublado",
        labs,
        _START_US - 120_000_000,
        3500.0,
        rate,
        targets=("recommended",),
    )

    scale = ScaleRunDir(root / "001__test" / "000__scale__run")
    _command(scale.path, "scale", "run", _START_US, end_us, failed=all_failed)
    _write(
        scale.flocks,
        "".join(
            f"- name: {flock}\n  count: {monkeys // 3}\n  business:\n    type: {business}\n"
            for _, flock, business, _, _ in _SCALE_OPS
        ),
    )
    summary = _scale_events(
        scale.events, rng, n_events, monkeys, duration_s, rate, chunk_rows, slowdown
    )
    _health(scale.health, rng, monkeys, duration_s, client_bound)
    summary.update(
        start=_iso(_START_US),
        end=_iso(end_us),
        duration_s=duration_s,
        client_bound=client_bound,
        client_bound_reason=("event-loop lag p99 above 100 ms for 42 s" if client_bound else None),
    )
    from library.flock.summary import write_summary

    write_summary(scale.path, summary, 95.0)

    nb = root / "001__test" / "001__notebook__run"
    _command(nb, "notebook", "run", end_us, end_us + 40_000_000, failed=all_failed)
    _notebook_events(nb / artifacts.EVENTS_DIR, rng, end_us, rate)

    tap = root / "001__test" / "002__tap__run_query_set"
    _command(tap, "tap", "run_query_set", end_us + 40_000_000, end_us + 70_000_000, failed=True)
    _events_simple(
        tap / artifacts.EVENTS_DIR,
        rng,
        Operation.TAP_QUERY,
        "tap",
        60,
        end_us + 40_000_000,
        120.0,
        max(rate, 0.2),
        targets=_TAP_TEMPLATES,
        rows=True,
    )

    _write(root / artifacts.FAILURES, "001__test/002__tap__run_query_set/FAILURE\n")
    _write(root / artifacts.EXIT_CODE, "1\n")
    _write(root / artifacts.FINISHED, "")
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
    _write(path / artifacts.ARGS, "token: '*****'\n")
    _write(path / artifacts.COMMAND, f"./run_toolbox.py {group} {command}\n")
    _write(path / artifacts.LOG, f"{_iso(start_us)} INFO {group} {command} started\n")
    _write(path / artifacts.EXIT_CODE, "1\n" if failed else "0\n")
    if failed:
        _write(path / artifacts.FAILURE, f"{error}\n")
    CommandResult(
        group=group,
        command=command,
        suffix=None,
        status="failure" if failed else "success",
        start=_iso(start_us),
        end=_iso(end_us),
        duration_s=(end_us - start_us) / 1e6,
        error=error,
    ).write(path)


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
) -> dict:
    """Events columns for `Recorder.write_columns`: string columns as dictionary codes."""
    import numpy as np
    import pyarrow as pa

    n = len(start)
    err_messages = pa.array([""] + [m for _, m in _ERRORS])
    codes = np.where(ok, 0, err_codes + 1).astype(np.int32)

    def dict_col(values, idx):
        return pa.DictionaryArray.from_arrays(
            pa.array(idx.astype(np.int32)), pa.array([str(v) for v in values])
        )

    return {
        "start_us": start,
        "duration_us": duration,
        "flock": flock,
        "monkey": dict_col(monkeys, monkey_codes),
        "business": business,
        "operation": operation,
        "target": dict_col(list(targets), target_codes),
        "error_class": dict_col([""] + [c for c, _ in _ERRORS], codes),
        "success": ok,
        "error": err_messages.take(pa.array(codes)),
        "rows": rows,
        "shard": np.zeros(n, np.int16),
    }


def _write_table(out: Path, columns: dict) -> None:
    from library.events import Recorder

    Recorder(out).write_columns(columns)


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

    ops = pa.array([str(o) for o, *_ in _SCALE_OPS])
    flocks = pa.array([f for _, f, *_ in _SCALE_OPS])
    businesses = pa.array([b for _, _, b, *_ in _SCALE_OPS])

    def by_op(op, values):
        return pa.DictionaryArray.from_arrays(pa.array(op.astype(np.int32)), values)

    medians = np.array([m for *_, m, _ in _SCALE_OPS]) * 1000 * slowdown
    shares = np.array([s for *_, s in _SCALE_OPS])
    names = [f"bot-{i}" for i in range(monkeys)]
    targets = ("",) + _TAP_TEMPLATES
    stats = {f: {"count": 0, "failures": 0} for _, f, *_ in _SCALE_OPS}
    span = int(duration_s * 1e6)
    # Monkey start/stop events bracket the run, so "active monkeys" can be derived from events.
    lifecycle = 2 * monkeys
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
            by_op(op, flocks),
            by_op(op, businesses),
            by_op(op, ops),
            targets,
            target_codes,
            ok,
            rng.integers(0, len(_ERRORS), n),
            names,
            rng.integers(0, monkeys, n),
            nrows,
        )
        if first and lifecycle:
            _write_table(out, _lifecycle(rng, names, span))
        first = False
        _write_table(out, table)
        for i, (_, flock, *_rest) in enumerate(_SCALE_OPS):
            mask = op == i
            stats[flock]["count"] += int(mask.sum())
            stats[flock]["failures"] += int((mask & ~ok).sum())
        remaining -= n
    return {
        "flocks": {
            flock: {
                "monkeys": monkeys // 3,
                "business": business,
                "started": monkeys // 3,
                "successes": stats[flock]["count"] - stats[flock]["failures"],
                "failures": stats[flock]["failures"],
                "success_pct": round(
                    100.0 * (1 - stats[flock]["failures"] / max(stats[flock]["count"], 1)), 2
                ),
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
        pa.array(ops.astype(np.int32)),
        pa.array([str(Operation.MONKEY_START), str(Operation.MONKEY_STOP)]),
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

    from library.flock.health import HealthSampler

    n = max(int(duration_s), 1)
    t = _START_US + np.arange(n, dtype=np.int64) * 1_000_000
    frac = np.arange(n) / n
    active = np.minimum(monkeys, np.ceil(monkeys * frac / 0.1)).astype(np.int64)
    active[frac > 0.98] = 0
    lag = rng.gamma(2, 4 if not client_bound else 60, n)
    cpu = np.clip(40 + 50 * frac + rng.normal(0, 5, n) + (40 if client_bound else 0), 0, 100)
    rss = (150e6 + 1e6 * active).astype(np.int64)
    # The engine's own sampler writes the file, from rows shaped as it samples them.
    sampler = HealthSampler(active=lambda: 0, shard=0)
    sampler.rows = list(
        zip(
            t.tolist(),
            (lag * 2).tolist(),
            lag.tolist(),
            cpu.tolist(),
            rss.tolist(),
            active.tolist(),
            [0] * n,
            strict=True,
        )
    )
    sampler.write(out)


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
        pa.array(np.array(ops)[idx].astype(np.int32)),
        pa.array([str(Operation.NOTEBOOK), str(Operation.CELL)]),
    )
    monkeys = ["bot-nb"]
    _write_table(
        out,
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
