"""The artifact contract: one module names the files, writes and reads the shapes."""

from __future__ import annotations

import json

import pytest

from library import artifacts, env, run, toolbox
from library.artifacts import CommandResult, ContractError, ScaleRunDir, SummaryKind
from library.events import Recorder
from library.report import parse


def test_invoke_writes_a_result_the_reader_accepts(tmp_path):
    with env.using_artifact_dir(tmp_path):
        toolbox.invoke("shell", "run", {"cmd": "true"})
    (directory, result), *_ = artifacts.command_results(tmp_path)
    assert directory.name == "000__shell__run"
    assert (result.group, result.command, result.status, result.error) == (
        "shell",
        "run",
        "success",
        None,
    )
    assert result.ok and result.duration_s >= 0 and result.start <= result.end
    for name in (artifacts.ARGS, artifacts.COMMAND, artifacts.LOG, artifacts.EXIT_CODE):
        assert (directory / name).is_file()
    assert artifacts.read_int(directory / artifacts.EXIT_CODE) == 0


def test_a_failed_call_has_a_failure_result_and_file(tmp_path):
    with env.using_artifact_dir(tmp_path), pytest.raises(run.CommandFailed):
        toolbox.invoke("shell", "run", {"cmd": "exit 3"})
    (directory, result), *_ = artifacts.command_results(tmp_path)
    assert result.status == "failure" and not result.ok and "exit 3" in result.error
    assert (directory / artifacts.FAILURE).is_file()
    assert artifacts.read_int(directory / artifacts.EXIT_CODE) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "fine"}, "'status' must be one of success, failure"),
        ({"duration_s": "3"}, "'duration_s' must be a number"),
        ({"duration_s": True}, "'duration_s' must be a number"),
        ({"group": 1}, "'group' must be a string"),
        ({"error": ["x"]}, "'error' must be a string or null"),
    ],
)
def test_a_result_of_the_wrong_shape_is_refused(tmp_path, change, message):
    good = CommandResult.finished("g", "c", None, "2026-01-01T00:00:00+00:00", 1.5, None)
    (tmp_path / artifacts.RESULT).write_text(json.dumps({**good.to_dict(), **change}))
    with pytest.raises(ContractError, match=message):
        CommandResult.read(tmp_path)


def test_a_result_missing_a_field_is_refused(tmp_path):
    (tmp_path / artifacts.RESULT).write_text(json.dumps({"group": "g", "command": "c"}))
    with pytest.raises(ContractError, match="no 'suffix'"):
        CommandResult.read(tmp_path)
    assert artifacts.command_results(tmp_path) == []


def test_operations_are_the_strings_on_disk(tmp_path):
    with Recorder(tmp_path / artifacts.EVENTS_DIR, flock="f") as rec:
        rec.record(artifacts.Operation.SPAWN_LAB, 1, 2)
        with rec.timed(artifacts.Operation.EMPTY_LOOP):
            pass
    table = ScaleRunDir(tmp_path).read_events()
    assert table.column("operation").to_pylist() == ["spawn_lab", "empty_loop"]
    assert artifacts.Operation("monkey_error") is artifacts.Operation.MONKEY_ERROR


def test_summaries_carry_their_kind_and_the_report_reads_them_by_kind(tmp_path):
    from library.flock.summary import write_summary

    scale = ScaleRunDir(tmp_path / "000__scale__run")
    scale.path.mkdir()
    summary = {
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-01T00:01:00+00:00",
        "duration_s": 60.0,
        "client_bound": True,
        "client_bound_reason": "event-loop lag",
        "flocks": {"f": {"started": 1, "successes": 1, "failures": 0, "success_pct": 100.0}},
    }
    write_summary(scale.path, summary, 95.0)
    assert scale.read_summary()["kind"] == "scale_run"
    assert scale.summary_text.read_text().startswith("• *f*")
    assert "<testsuite" in scale.junit.read_text()
    tap = tmp_path / "001__tap__run_query_set"
    tap.mkdir()
    # A query set's summary has another shape; a "client_bound" key in it means nothing.
    artifacts.write_summary_json(
        tap, SummaryKind.TAP_QUERY_SET, {"query_set": "q.yaml", "client_bound": True}
    )
    with pytest.raises(ContractError, match="not a scale_run summary"):
        ScaleRunDir(tap).read_summary()
    legacy = tmp_path / "002__scale__run"
    legacy.mkdir()
    (legacy / artifacts.SUMMARY_JSON).write_text(json.dumps({**summary, "client_bound": False}))
    odd = tmp_path / "003__odd"
    odd.mkdir()
    (odd / artifacts.SUMMARY_JSON).write_text(json.dumps({"kind": "horoscope"}))

    run = parse.read_run(tmp_path)
    kinds = {s["_path"]: s["kind"] for s in run.summaries}
    assert kinds == {
        "000__scale__run": "scale_run",
        "001__tap__run_query_set": "tap_query_set",
        "002__scale__run": "scale_run",  # written before summaries had a kind
    }
    assert [s["_path"] for s in run.summaries_of(SummaryKind.TAP_QUERY_SET)] == [
        "001__tap__run_query_set"
    ]
    assert run.client_bound == ["000__scale__run: event-loop lag"]
    assert run.problems == ["003__odd/summary.json: unknown summary kind 'horoscope'"]


def test_whole_columns_are_written_with_the_record_defaults(tmp_path):
    import numpy as np

    from library.events import COLUMNS, read_events

    rec = Recorder(tmp_path, flock="f", business="b", shard=2)
    path = rec.write_columns(
        {
            "start_us": [10, 20],
            "duration_us": np.array([3, 4]),
            "operation": artifacts.Operation.CELL,
            "success": [True, False],
            "error": ["", "boom"],
        }
    )
    assert path.name == "part-s002-00000.parquet"
    first, second = read_events(tmp_path).to_pylist()
    assert set(first) == set(COLUMNS)
    assert {k: v for k, v in first.items() if k != "lag_us"} == {
        "start_us": 10,
        "duration_us": 3,
        "flock": "f",
        "monkey": "",
        "business": "b",
        "operation": "cell",
        "target": "",
        "error_class": "",
        "success": True,
        "error": "",
        "rows": -1,
        "shard": 2,
    }
    assert (second["success"], second["error"]) == (False, "boom")
    with pytest.raises(ValueError, match="no events column 'nope'"):
        rec.write_columns({"start_us": [1], "duration_us": [1], "operation": "x", "nope": [1]})
    with pytest.raises(ValueError, match="different lengths"):
        rec.write_columns({"start_us": [1, 2], "duration_us": [1], "operation": "x"})
    with pytest.raises(ValueError, match="'duration_us' has no default"):
        rec.write_columns({"start_us": [1], "operation": "x"})
