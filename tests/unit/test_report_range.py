"""`report post_mortem --since/--until` on a standing service's partitioned events: only the
events of that time are reported, error examples included, and a bad time is one line."""

from __future__ import annotations

import json

import numpy as np

from library.eventstore import HOUR_US, PartitionedRecorder
from tests.helpers import REPO, error_lines, run_cli

T0 = 1_796_025_200_000_000  # 2026-11-30 07:53:20 UTC


def _history(events_dir) -> None:
    """Three hours of 100 events: 06:xx 10 failed, 07:xx 30 failed, 08:xx none failed.
    Each failure names its hour, so the page shows which hours were read."""
    rec = PartitionedRecorder(events_dir, flock="svc", business="HTTPLoop")
    for hour, failures in ((-1, 10), (0, 30), (1, 0)):
        base = (T0 // HOUR_US + hour) * HOUR_US + 60_000_000
        n = 100
        ok = np.arange(n) >= failures
        rec.write_columns(
            {
                "start_us": base + np.arange(n) * 1_000_000,
                "duration_us": np.full(n, 2000 + 1000 * (hour + 1)),
                "success": ok,
                "operation": "http_request",
                "monkey": "bot-1",
                "error_class": np.where(ok, "", f"HTTPStatusError{hour + 1}"),
                "error": np.where(ok, "", f"GET /: HTTP 500 in hour {hour + 1}"),
            }
        )
    rec.close()


def test_post_mortem_on_a_time_range(tmp_path):
    state = tmp_path / "state"
    _history(state / "events")
    since = "2026-11-30T07:00:00"
    until = "2026-11-30T08:00:00Z"
    result = run_cli(
        REPO / "run_toolbox.py",
        "report",
        "post_mortem",
        state,
        "--since",
        since,
        "--until",
        until,
        env={"ARTIFACT_DIR": str(tmp_path / "artifacts")},
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads((state / "report" / "stats.json").read_text())
    assert stats["events"] == 100
    (op,) = [o for o in stats["operations"] if o["operation"] == "http_request"]
    assert (op["count"], op["failures"]) == (100, 30)
    page = (state / "report" / "index.html").read_text()
    assert "HTTP 500 in hour 1" in page and "in hour 0" not in page

    everything = run_cli(
        REPO / "run_toolbox.py",
        "report",
        "post_mortem",
        state,
        env={"ARTIFACT_DIR": str(tmp_path / "artifacts")},
    )
    assert everything.returncode == 0, everything.stderr
    assert json.loads((state / "report" / "stats.json").read_text())["events"] == 300

    bad = run_cli(REPO / "run_toolbox.py", "report", "post_mortem", state, "--since", "noon")
    assert bad.returncode == 2
    assert error_lines(bad.stderr) == [
        "error: report post_mortem --since: expected an ISO time (2026-11-30T08:00) or epoch "
        "seconds, got 'noon'"
    ]
