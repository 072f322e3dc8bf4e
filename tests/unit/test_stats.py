"""library/stats.py: the one rule for per-(flock, operation) figures, checked against numpy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from library import stats


def _stats(flocks, ops, ok, dur, lag=None):
    f_names = sorted(set(flocks))
    o_names = sorted(set(ops))
    return stats.operation_stats(
        np.array([f_names.index(f) for f in flocks]),
        f_names,
        np.array([o_names.index(o) for o in ops]),
        o_names,
        np.array(ok, bool),
        np.array(dur, np.int64),
        None if lag is None else np.array(lag, np.int64),
    )


def test_all_events_linear_percentiles_match_numpy():
    rng = np.random.default_rng(7)
    dur = rng.integers(0, 5_000_000, 1000)
    ok = rng.random(1000) > 0.1
    flocks = ["a" if i % 3 else "b" for i in range(1000)]
    rows = _stats(flocks, ["op"] * 1000, ok, dur)
    assert [r.key for r in rows] == ["a/op", "b/op"]
    for row, name in zip(rows, ("a", "b"), strict=True):
        mine = dur[np.array(flocks) == name]
        # Failed events are part of the population.
        assert row.count == len(mine)
        assert row.failures == int((~ok[np.array(flocks) == name]).sum())
        want = np.percentile(mine, [50, 95, 99]) / 1000
        assert [row.p50_ms, row.p95_ms, row.p99_ms] == pytest.approx(want, abs=1e-3)
        assert row.max_ms == pytest.approx(mine.max() / 1000)


def test_percentiles_of_a_list_use_the_same_rule():
    assert stats.percentiles([1.0, 2.0], [50]) == [1.5]
    assert stats.percentiles([], [50, 95]) == [None, None]


@pytest.mark.parametrize(
    "dur",
    [[0], [0, 0, 0], [7], [-5, 3]],
    ids=["one zero", "all zero", "one event", "clock step back"],
)
def test_degenerate_shapes(dur):
    (row,) = _stats(["f"] * len(dur), ["x"] * len(dur), [True] * len(dur), dur)
    assert row.count == len(dur)
    assert row.p50_ms is not None and row.p50_ms >= 0
    assert row.max_ms >= row.p99_ms >= row.p95_ms >= row.p50_ms


def test_no_events_no_rows():
    assert _stats([], [], [], []) == []
    assert stats.table_stats(pa.table({"duration_us": pa.array([], pa.int64())})) == []


def test_corrected_percentiles_only_with_a_schedule():
    # A server stalls once for 2 s: the 99 executions scheduled behind it start late.
    dur = [2_000_000] + [1_000] * 99
    lag = [0] + [2_000_000 - i * 10_000 for i in range(99)]
    (row,) = _stats(["f"] * 100, ["x"] * 100, [True] * 100, dur, lag)
    assert row.p99_ms < 100  # raw p99 hides the stall
    assert row.corrected_p99_ms >= 1000
    assert row.corrected_p50_ms > row.p50_ms
    (plain,) = _stats(["f"], ["x"], [True], [5], [0])
    assert "corrected_p50_ms" not in plain.as_dict()


def test_table_with_chunks_of_different_dictionaries():
    one = pa.table(
        {
            "flock": pa.array(["a", "b"]).dictionary_encode(),
            "operation": pa.array(["x", "x"]).dictionary_encode(),
            "success": [True, False],
            "duration_us": [1000, 3000],
        }
    )
    two = pa.table(
        {
            "flock": pa.array(["b"]).dictionary_encode(),
            "operation": pa.array(["x"]).dictionary_encode(),
            "success": [True],
            "duration_us": [5000],
        }
    )
    rows = stats.table_stats(pa.concat_tables([one, two]))
    assert [(r.key, r.count, r.failures, r.p50_ms) for r in rows] == [
        ("a/x", 1, 0, 1.0),
        ("b/x", 2, 1, 4.0),
    ]


def test_tap_runner_summary_uses_the_same_rule():
    """Failed queries are latency too: before, tap/runner.py took percentiles of successes only."""
    from library.tap.client import QueryResult
    from library.tap.runner import summarize

    def q(seconds, ok):
        return QueryResult("SELECT 1", "sync", success=ok, total_s=seconds, rows=1)

    results = [(0, "cone", q(0.010, True)), (0, "cone", q(0.020, True)), (1, "cone", q(30, False))]
    results += [(0, "count", q(0.001, True))]
    summary = summarize(results, 1.0, 0.0)
    cone = summary["templates"]["cone"]
    durations_us = np.array([10_000, 20_000, 30_000_000])
    assert (cone["count"], cone["failures"]) == (3, 1)
    assert cone["p50_ms"] == 20.0 and cone["max_ms"] == 30_000.0
    assert cone["p95_ms"] == pytest.approx(np.percentile(durations_us, 95) / 1000, abs=1e-3)
    assert summary["p50_ms"] == 15.0  # median of all four queries
    assert summarize([], 1.0, 0.0)["p50_ms"] is None


@pytest.mark.parametrize("seed", range(20))
def test_percentiles_of_a_list_equal_numpys_linear_method(seed):
    rng = np.random.default_rng(seed)
    values = list(rng.lognormal(3, 1.5, int(rng.integers(1, 300))))
    if seed % 4 == 0:
        values = [float(round(v)) for v in values]  # ties
    qs = [0, 1, 25, 50, 90, 95, 99, 99.9, 100]
    assert stats.percentiles(values, qs) == [float(v) for v in np.percentile(values, qs)]
