"""`report post_mortem` on synthetic runs of 100k and 10 million events: wall time, peak RSS.

Each post-mortem runs as a user runs it, `./run_toolbox.py report post_mortem DIR`, in a child
process whose own peak RSS comes from `os.wait4`. Anchor, measured in the same run on the same
files: a child process that only reads the events' Parquet files with pyarrow (the columns the
report uses) — the floor any report over these files pays. Goals: 100k events <= 3 s;
10M events <= 30 s and <= 2 GiB peak RSS. Figures are printed, never asserted.
Run with `make bench` or `pytest tests/bench/bench_report.py -s -o python_files='bench_*.py'`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import synthetic

REPO = Path(__file__).resolve().parents[2]
ANCHOR = """
import sys, pathlib, pyarrow.parquet as pq
cols = ["start_us", "duration_us", "rows", "success", "flock", "operation", "target",
        "error_class"]
n = sum(pq.read_table(p, columns=cols).num_rows
        for p in sorted(pathlib.Path(sys.argv[1]).rglob("events/*.parquet")))
print(n)
"""


def _child(args: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "CI": "true"},
    )
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    return wall, usage.ru_maxrss * 1024, out


@pytest.mark.parametrize(
    "n_events, goal_s", [(100_000, 3.0), (10_000_000, 30.0)], ids=["100k", "10M"]
)
def test_post_mortem_scale(tmp_path, n_events, goal_s):
    t0 = time.perf_counter()
    run = synthetic.write_run(tmp_path / "run", n_events, monkeys=1000, duration_s=3600)
    made = time.perf_counter() - t0
    on_disk = sum(p.stat().st_size for p in run.rglob("*.parquet"))
    anchor_s, anchor_rss, rows = _child([sys.executable, "-c", ANCHOR, str(run)])
    report_s, report_rss, _ = _child(
        [sys.executable, "run_toolbox.py", "report", "post_mortem", str(run)]
    )
    noop_s, noop_rss, _ = _child([sys.executable, "run_toolbox.py", "--help"])
    assert (run / "report" / "index.html").exists()
    gib = 1024**3
    print(
        f"\n[report {n_events:,} events] generated in {made:.1f} s, "
        f"{on_disk / 1e6:.1f} MB of Parquet, {int(rows):,} rows"
    )
    print(
        f"  anchor (pyarrow reads the events, child): {anchor_s:.2f} s, "
        f"peak RSS {anchor_rss / 2**20:.0f} MiB"
    )
    print(
        f"  report post_mortem (child, CLI):          {report_s:.2f} s "
        f"({report_s / anchor_s:.1f}x anchor; goal <= {goal_s:g} s), "
        f"peak RSS {report_rss / 2**20:.0f} MiB ({report_rss / anchor_rss:.1f}x anchor"
        + ("; goal <= 2 GiB" if n_events >= 10_000_000 else "")
        + ")"
    )
    print(f"  ./run_toolbox.py --help (interpreter + CLI start): {noop_s:.2f} s")
    print(
        f"  verdict: time {'within' if report_s <= goal_s else 'OVER'} goal"
        + (
            f", memory {'within' if report_rss <= 2 * gib else 'OVER'} goal"
            if n_events >= 10_000_000
            else ""
        )
    )
