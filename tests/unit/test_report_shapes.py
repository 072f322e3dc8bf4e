"""A report or a comparison never crashes on legitimate data.

Shapes a real run can have: every duration 0 (an EmptyLoop run), one event, one failed event,
one flock, only engine bookkeeping, no events at all. Each gets a post-mortem page with every
part drawn (no "problem" note) and compares with a run of every other shape. The first test is
the reported crash as a user met it: `report compare` of two EmptyLoop runs ended in
`ValueError: Data cannot be log-scaled` from a plot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest

from library import report
from library.events import Recorder
from library.report import compare as cmp

REPO = Path(__file__).resolve().parents[2]
T0 = 1_780_000_000_000_000


def _toolbox(artifacts: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run_toolbox.py"), *args],
        cwd=REPO,
        env=dict(os.environ, ARTIFACT_DIR=str(artifacts), CI="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_compare_of_two_empty_loop_runs(tmp_path):
    flocks = tmp_path / "flocks.yaml"
    flocks.write_text(
        "- name: e\n  count: 5\n  scopes: []\n  user_spec: {username_prefix: bot-mobu-e}\n"
        "  business: {type: EmptyLoop, options: {idle_time: 100ms}}\n"
    )
    runs = []
    for name in ("one", "two"):
        done = _toolbox(
            tmp_path / name, "scale", "run", "--flocks", str(flocks), "--duration", "1s"
        )
        assert done.returncode == 0, done.stderr
        (run,) = (tmp_path / name).glob("*__scale__run")
        runs.append(str(run))
    result = _toolbox(tmp_path / "cmp", "report", "compare", *runs)
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr
    assert "e/empty_loop" in result.stdout
    (out,) = (tmp_path / "cmp").glob("*__report__compare")
    assert (out / "compare" / "compare_percentiles.png").is_file()


def _events(run: Path, rows: list[tuple]) -> Path:
    """rows: (flock, operation, duration_us, success)."""
    run.mkdir(parents=True)
    if rows:
        rec = Recorder(run / "events")
        for i, (flock, op, duration, ok) in enumerate(rows):
            rec.record(
                op,
                T0 + i * 1000,
                duration,
                ok,
                "bot-a",
                "",
                "" if ok else "TimeoutError",
                "" if ok else "timed out",
                flock=flock,
                business="EmptyLoop",
            )
        rec.close()
    return run


SHAPES = {
    "all zero": [("f", "empty_loop", 0, True)] * 50,
    "one event": [("f", "tap_query", 1234, True)],
    "one failed event": [("f", "tap_query", 30_000_000, False)],
    "one flock": [("f", "http_request", 1000 + 10 * i, i % 7 != 0) for i in range(200)]
    + [("f", "monkey_start", 0, True), ("f", "monkey_stop", 5_000_000, True)],
    "bookkeeping only": [("f", "monkey_start", 0, True), ("f", "monkey_stop", 0, True)],
    "no latency at all": [],
}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    base = tmp_path_factory.mktemp("shapes")
    return {name: _events(base / name.replace(" ", "_"), rows) for name, rows in SHAPES.items()}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_post_mortem_draws_every_part(shaped, shape):
    index = report.post_mortem(shaped[shape])
    page = index.read_text()
    assert 'class="problem"' not in page, page[page.find('class="problem"') :][:300]
    stats = json.loads((index.parent / "stats.json").read_text())
    assert stats["events"] == len(SHAPES[shape])


@pytest.mark.parametrize("pair", list(combinations(SHAPES, 2)), ids=" vs ".join)
def test_compare_any_two_shapes(shaped, tmp_path, pair):
    result = cmp.run([shaped[pair[0]], shaped[pair[1]]], ["p95=10"], None, tmp_path)
    assert (tmp_path / "compare.txt").is_file()
    assert all(name.endswith(".png") for name in result["plots"])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_compare_a_shape_with_itself(shaped, tmp_path, shape):
    cmp.run([shaped[shape], shaped[shape]], ["p95=10", "success_pct=1"], None, tmp_path)


@pytest.mark.parametrize("load", [0.0, 99.0], ids=["idle core: forked child", "busy: serial"])
def test_plots_drawn_in_a_child_or_here_come_back_in_order(tmp_path, monkeypatch, load):
    """draw_plots splits the plots with a forked child only when a core is idle; either way
    every plot comes back in order and a failing one is a problem note, not a crash."""
    import os

    from library.report import build

    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.delenv("BOSUN_REPORT_SERIAL", raising=False)

    def draw(name):
        def run():
            if name == "p2":
                raise ValueError("no data")
            (tmp_path / f"{name}.png").write_text(str(os.getpid()))
            return f"{name}.png"

        return run

    named = [(f"p{i}", draw(f"p{i}")) for i in range(5)]
    got = build.draw_plots(named)
    assert [name for name, _, _ in got] == ["p0", "p1", "p2", "p3", "p4"]
    assert got[2][1] is None and "ValueError: no data" in got[2][2]
    pids = {(tmp_path / f"p{i}.png").read_text() for i in (0, 1, 3, 4)}
    assert len(pids) == (2 if load == 0.0 else 1)
