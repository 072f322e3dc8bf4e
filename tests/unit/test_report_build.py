"""The post-mortem report from the recorded fixture run, an empty run and an all-failed run."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from library.report import parse, post_mortem, tables
from tests.helpers import REPO, error_lines, run_cli
from tests.support import synthetic

FIXTURE = REPO / "tests" / "fixtures" / "recorded_run"
EVERY_PLOT = (
    "active_monkeys",
    "ops_rate",
    "latency_over_time",
    "latency_cdf",
    "failures_over_time",
    "lab_spawns",
    "slowest_notebooks",
    "tap_templates",
    "engine_health",
)
EVERY_TABLE = ("summary", "failures", "commands", "notebooks", "tap")


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    run = tmp_path_factory.mktemp("recorded") / "run"
    shutil.copytree(FIXTURE, run)
    index = post_mortem(run)
    return run, index, index.read_text()


def test_parse_reads_every_event_of_the_fixture():
    run = parse.read_run(FIXTURE)
    on_disk = sum(pq.ParquetFile(p).metadata.num_rows for p in FIXTURE.rglob("events/*.parquet"))
    assert len(run.events) == on_disk > 1000
    assert run.project == "synthetic" and run.step == "test"
    assert run.presets == ["scale_small", "synthetic"]
    assert run.overrides == {"tests.scale.users": 30}
    assert run.result == "failure (exit code 1)"
    assert {c.command for c in run.commands} == {"spawn_lab", "run", "run_query_set"}
    assert run.health is not None and len(run.health["time_us"]) > 0
    assert run.problems == []


def test_summary_percentiles_match_numpy_on_the_fixture():
    run = parse.read_run(FIXTURE)
    ev = run.events
    rows = tables.summary(ev)
    row = next(r for r in rows if r["operation"] == "tap_query" and r["flock"] == "tap")
    mask = (ev.operation.codes == ev.operation.code_of("tap_query")) & (
        ev.flock.codes == ev.flock.code_of("tap")
    )
    durations_ms = ev.duration_us[mask] / 1000
    assert row["count"] == mask.sum()
    assert row["failures"] == (~ev.success[mask]).sum()
    for p in (50, 95, 99):
        assert row[f"p{p}_ms"] == pytest.approx(np.percentile(durations_ms, p), rel=1e-6)
    assert row["max_ms"] == pytest.approx(durations_ms.max())


def test_fixture_report_has_every_plot_and_table(fixture_report):
    run, index, html = fixture_report
    assert index == run / "report" / "index.html"
    for name in EVERY_PLOT:
        png = run / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f'src="{name}.png"' in html
    for table in EVERY_TABLE:
        assert f'<section id="{table}">' in html, table
    # The failure links point at the FAILURE file and log of the failed command, relatively.
    assert 'href="../001__test/002__tap__run_query_set/FAILURE"' in html
    assert 'href="../001__test/002__tap__run_query_set/log.txt"' in html
    assert not re.search(r'(src|href)="(/|https?:)', html)
    stats = json.loads((run / "report" / "stats.json").read_text())
    assert stats["project"] == "synthetic" and stats["presets"] == ["scale_small", "synthetic"]
    assert {r["operation"] for r in stats["operations"]} >= {
        "tap_query",
        "empty_loop",
        "spawn_lab",
        "notebook",
        "cell",
    }


def test_client_bound_warning_is_shown(tmp_path):
    run = synthetic.write_run(tmp_path / "cb", 3_000, monkeys=9, client_bound=True)
    html = post_mortem(run).read_text()
    assert "Client-bound:" in html and "event-loop lag p99 above 100 ms" in html


def test_empty_run_still_gets_a_page(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    html = post_mortem(empty).read_text()
    assert "holds no toolbox results and no events" in html
    assert list((empty / "report").glob("*.png")) == []
    stats = json.loads((empty / "report" / "stats.json").read_text())
    assert stats["operations"] == [] and stats["events"] == 0


def test_broken_parquet_is_a_note_not_a_crash(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    (run / "001__test" / "000__scale__run" / "events" / "part-00001.parquet").write_text("junk")
    html = post_mortem(run).read_text()
    assert "Unreadable file 001__test/000__scale__run/events/part-00001.parquet" in html
    assert 'src="ops_rate.png"' in html


def test_all_failed_run_still_gets_a_page(tmp_path):
    run = synthetic.write_run(tmp_path / "failed", 2_000, all_failed=True, monkeys=10)
    index = post_mortem(run)
    html = index.read_text()
    stats = json.loads((index.parent / "stats.json").read_text())
    work = [r for r in stats["operations"] if r["operation"] not in tables.LIFECYCLE]
    assert work and all(r["success_pct"] == 0 for r in work)
    assert '<section id="failures">' in html and "TimeoutError" in html
    assert (index.parent / "failures_over_time.png").exists()
    assert html.count('class="bad"') >= len(work)


def test_cli_post_mortem(tmp_path):
    run = synthetic.write_run(tmp_path / "run", 1_000, monkeys=6)
    done = run_cli("run_toolbox.py", "report", "post_mortem", run)
    assert done.returncode == 0, done.stderr
    assert str(run / "report" / "index.html") in done.stdout
    missing = run_cli("run_toolbox.py", "report", "post_mortem", tmp_path / "nope")
    assert missing.returncode == 2
    assert error_lines(missing.stderr) and "is not a directory" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_flock_behind_schedule_is_flagged_in_the_report(tmp_path):
    # Two monkeys meant to start every second; one falls 0.5 s further behind at every
    # execution (its actual starts span 13.5 s for 9 intervals: 67 % of the intended rate).
    from library.events import Recorder

    run = tmp_path / "run"
    rec = Recorder(run / "000__scale__run" / "events", flock="http", business="HTTPLoop")
    t0 = 1_700_000_000_000_000
    for i in range(10):
        for monkey, lag_s in (("bot-a", 0.0), ("bot-b", 0.5 * i)):
            lag = int(lag_s * 1_000_000)
            rec.record("http_request", t0 + i * 1_000_000 + lag, 20_000, monkey=monkey, lag_us=lag)
    rec.close()
    html = post_mortem(run).read_text()
    row = next(
        r for r in tables.summary(parse.read_run(run).events) if r["operation"] == "http_request"
    )
    assert row["behind_schedule"] and row["achieved_pct"] < 95
    assert "Behind schedule:</b> http/http_request" in html
    assert "Intended vs achieved load" in html


def test_a_flock_on_schedule_is_not_flagged(tmp_path):
    from library.events import Recorder

    run = tmp_path / "run"
    rec = Recorder(run / "000__scale__run" / "events", flock="http", business="HTTPLoop")
    t0 = 1_700_000_000_000_000
    for i in range(10):
        rec.record("http_request", t0 + i * 1_000_000 + 1000, 20_000, monkey="bot-a", lag_us=1000)
    rec.close()
    html = post_mortem(run).read_text()
    assert "Behind schedule" not in html
    assert "Intended vs achieved load" in html
