"""report compare as a CI gate, and the SQLite history, through the real ./run_toolbox.py."""

from __future__ import annotations

import json
import sqlite3

import pytest

from library.errors import UserError
from library.report import compare, history, post_mortem
from tests.helpers import error_lines, run_cli
from tests.support import synthetic


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs alike (base, same) and one 1.6x slower with more failures (slow)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, seed, slowdown, rate in (
        ("base", 0, 1.0, 0.02),
        ("same", 1, 1.0, 0.02),
        ("slow", 2, 1.6, 0.10),
    ):
        out[name] = synthetic.write_run(
            root / name, 20_000, seed=seed, monkeys=12, slowdown=slowdown, failure_rate=rate
        )
        post_mortem(out[name])
    return out


def _compare(tmp_path, *args, db=None):
    env = {"ARTIFACT_DIR": str(tmp_path / "artifacts")}
    if db is not None:
        env["BOSUN_HISTORY_DB"] = str(db)
    return run_cli("run_toolbox.py", "report", "compare", *map(str, args), env=env)


def test_regression_exits_1_naming_operation_metric_delta_threshold(runs, tmp_path):
    done = _compare(tmp_path, runs["base"], runs["slow"], "--threshold", "p95=20")
    assert done.returncode == 1, done.stderr
    [line] = error_lines(done.stderr)
    assert "regression:" in line and "p95" in line and "threshold p95=20" in line
    assert any(op in line for op in ("empty_loop", "execute_code", "tap_query"))
    assert "Traceback" not in done.stderr
    assert "REGRESSION" in done.stdout  # the table is printed before the verdict
    [cmp_dir] = (tmp_path / "artifacts").glob("*__report__compare/compare")
    assert {p.name for p in cmp_dir.iterdir()} >= {
        "compare.txt",
        "compare.json",
        "compare_percentiles.png",
        "compare_cdf.png",
    }
    result = json.loads((cmp_dir / "compare.json").read_text())
    assert result["violations"] and all(v["delta"] > 20 for v in result["violations"])


def test_within_threshold_exits_0(runs, tmp_path):
    done = _compare(
        tmp_path,
        runs["base"],
        runs["same"],
        "--threshold",
        "p95=20",
        "--threshold",
        "success_pct=2",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "tap/tap_query" in done.stdout and "→" in done.stdout
    assert "REGRESSION" not in done.stdout


def test_operation_threshold_and_success_drop(runs, tmp_path):
    # Only tap_query is gated, loosely: the 60 % slowdown stays under 100 %.
    ok = _compare(tmp_path, runs["base"], runs["slow"], "--threshold", "tap_query.p95=100")
    assert ok.returncode == 0, ok.stderr
    drop = _compare(tmp_path, runs["base"], runs["slow"], "--threshold", "success_pct=1")
    assert drop.returncode == 1
    assert "success_pct" in drop.stderr and "threshold success_pct=1" in drop.stderr


def test_bad_threshold_and_too_few_runs_are_one_line_errors(runs, tmp_path):
    bad = _compare(tmp_path, runs["base"], runs["same"], "--threshold", "p96=oops")
    assert bad.returncode == 2 and len(error_lines(bad.stderr)) == 1
    assert "--threshold 'p96=oops'" in bad.stderr and "Traceback" not in bad.stderr
    one = _compare(tmp_path, runs["base"])
    assert one.returncode == 2 and "give two or more run directories" in one.stderr


def test_thresholds_parse_and_apply():
    [general, specific] = compare.parse_thresholds(["p95=20", "tap/tap_query.p50=5"])
    assert general.applies_to("tap/tap_query") and general.metric == "p95_ms"
    assert specific.metric == "p50_ms" and specific.applies_to("tap/tap_query")
    assert not specific.applies_to("other/tap_query")
    [op] = compare.parse_thresholds(["tap_query.p95=10"])
    assert op.applies_to("tap/tap_query") and not op.applies_to("python/execute_code")
    assert compare.exceeded(op, 10.5) and not compare.exceeded(op, 10.0)
    [succ] = compare.parse_thresholds(["success_pct=1"])
    assert compare.exceeded(succ, compare.delta("success_pct", 99.5, 98.0))
    assert not compare.exceeded(succ, compare.delta("success_pct", 99.5, 99.0))
    with pytest.raises(UserError):
        compare.parse_thresholds(["p95"])


def test_history_records_lists_and_compares_against_median(runs, tmp_path):
    db = tmp_path / "history.sqlite"
    for name in ("base", "same"):
        assert isinstance(history.record(runs[name], db), int)
    # Recording a run again replaces its rows instead of counting it twice.
    history.record(runs["same"], db)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM result_groups").fetchone() == (2,)
    recent = history.recent(db, project="synthetic", last=5)
    assert [r["root"] for r in recent][0] in (str(runs["base"]), str(runs["same"]))
    assert recent[0]["presets"] == ["scale_small", "synthetic"]
    assert "tap/tap_query" in recent[0]["operations"]

    listed = run_cli("run_toolbox.py", "report", "history", "--db", db, "--project", "synthetic")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("synthetic") >= 2 and str(runs["base"]) in listed.stdout

    slow = _compare(tmp_path, runs["slow"], "--against-history", 2, "--threshold", "p95=20", db=db)
    assert slow.returncode == 1, slow.stderr
    assert "median of the last 2 run(s) of synthetic" in slow.stdout
    same = _compare(tmp_path, runs["same"], "--against-history", 2, "--threshold", "p95=20", db=db)
    # Its own record is left out of its baseline: compared with the one other run.
    assert same.returncode == 0, same.stderr
    assert "median of the last 1 run(s)" in same.stdout


def test_history_skips_a_run_with_nothing_to_record(tmp_path, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    db = tmp_path / "h.sqlite"
    with caplog.at_level("INFO", logger="library.report.history"):
        assert history.record(empty, db) is None
    assert "nothing recorded" in caplog.text
    assert not db.exists()


def test_against_history_without_history_is_one_line(runs, tmp_path):
    done = _compare(tmp_path, runs["base"], "--against-history", 3, db=tmp_path / "none.sqlite")
    assert done.returncode == 2 and "no such database" in done.stderr
    assert "Traceback" not in done.stderr
