"""One way to compute a number: a real scale run's summary.json, the report's stats.json and the
live view's last line say the same counts and percentiles (all by library/stats.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(
    r"e: \d+ running/\d+ idle/\d+ error, (?P<ok>\d+) ok, (?P<failed>\d+) failed"
    r" \((?P<pct>[\d.]+)%\), [\d.]+ ops/s, empty_loop p50 (?P<p50>[\d.]+) ms"
    r" p95 (?P<p95>[\d.]+) ms"
)


def _toolbox(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ARTIFACT_DIR=str(tmp_path / "artifacts"), CI="1")
    result = subprocess.run(
        [sys.executable, str(REPO / "run_toolbox.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_summary_report_and_live_view_agree(tmp_path):
    flocks = tmp_path / "flocks.yaml"
    flocks.write_text(
        "- name: e\n  count: 25\n  scopes: []\n  user_spec: {username_prefix: bot-mobu-e}\n"
        "  business: {type: EmptyLoop, options: {idle_time: 50ms}}\n"
    )
    run = _toolbox(tmp_path, "scale", "run", "--flocks", str(flocks), "--duration", "2s")
    (out,) = (tmp_path / "artifacts").glob("*__scale__run")
    # The last status line is the one printed after the stop.
    live = list(LAST_LINE.finditer(run.stderr + run.stdout))[-1]

    summary = json.loads((out / "summary.json").read_text())["flocks"]["e"]
    main = summary["operations"]["empty_loop"]
    _toolbox(tmp_path, "report", "post_mortem", str(out))
    stats = json.loads((out / "report" / "stats.json").read_text())
    (row,) = [r for r in stats["operations"] if r["key"] == "e/empty_loop"]

    assert summary["successes"] > 100  # a real run, not an empty one
    assert int(live["ok"]) == summary["successes"] == row["count"] - row["failures"]
    assert int(live["failed"]) == summary["failures"]
    assert float(live["pct"]) == summary["success_pct"]
    for name in ("count", "failures", "success_pct", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert main[name] == row[name], name
    assert float(live["p50"]) == main["p50_ms"] == row["p50_ms"]
    assert float(live["p95"]) == main["p95_ms"] == row["p95_ms"]
    # Every other operation (engine start/stop) agrees too.
    for op, figures in summary["operations"].items():
        (other,) = [r for r in stats["operations"] if r["key"] == f"e/{op}"]
        assert {k: other[k] for k in figures} == figures, op
