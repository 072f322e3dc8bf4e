"""The timing-event recorder: schema, failures, chunking, sharing between tasks and threads."""

from __future__ import annotations

import asyncio
import threading

import pyarrow.parquet as pq
import pytest

from library import events, redact
from library.events import Recorder, read_events


def test_round_trip_keeps_every_column(tmp_path):
    rec = Recorder(tmp_path / "events", flock="tap", business="TAPQueryRunner")
    rec.record("tap_query", 1_700_000_000_000_000, 1500, monkey="bot-1", target="cone", rows=12)
    rec.record(
        "tap_query",
        1_700_000_000_100_000,
        900,
        False,
        "bot-2",
        "cone",
        "DALQueryError",
        "syntax error",
        flock="other",
        business="tap",
    )
    files = rec.close()
    assert [f.name for f in files] == ["part-00000.parquet"]
    table = read_events(tmp_path)
    assert table.schema == events.schema()
    rows = table.to_pylist()
    assert rows[0] == {
        "start_us": 1_700_000_000_000_000,
        "duration_us": 1500,
        "lag_us": 0,
        "flock": "tap",
        "monkey": "bot-1",
        "business": "TAPQueryRunner",
        "operation": "tap_query",
        "target": "cone",
        "success": True,
        "error_class": "",
        "error": "",
        "rows": 12,
        "shard": 0,
    }
    assert rows[1]["flock"] == "other" and rows[1]["business"] == "tap"
    assert rows[1]["success"] is False and rows[1]["error_class"] == "DALQueryError"


def test_timed_records_failure_and_reraises(tmp_path):
    rec = Recorder(tmp_path, flock="f", business="b")
    with rec.timed("cell", monkey="bot-a", target="nb.ipynb#cell-3") as t:
        t.rows = 4
    with pytest.raises(KeyError), rec.timed("cell", monkey="bot-a"):
        raise KeyError("line one\nline two " + "x" * 500)
    rec.close()
    ok, bad = read_events(tmp_path).to_pylist()
    assert ok["success"] and ok["rows"] == 4 and ok["target"] == "nb.ipynb#cell-3"
    assert ok["start_us"] > 1_600_000_000_000_000 and ok["duration_us"] >= 0
    assert not bad["success"] and bad["error_class"] == "KeyError"
    assert "\n" not in bad["error"] and len(bad["error"]) <= events.ERROR_MAX_CHARS


def test_registered_secret_never_reaches_the_file(tmp_path):
    with redact.isolated_registry():
        redact.register_secret("s3cr3t-token-value")
        rec = Recorder(tmp_path, flock="f")
        with pytest.raises(RuntimeError), rec.timed("http_request"):
            raise RuntimeError("GET http://x/?a=1 failed with s3cr3t-token-value")
        rec.close()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("*.parquet"))
    assert b"s3cr3t-token-value" not in data
    assert "failed with" in read_events(tmp_path).column("error")[0].as_py()


def test_full_chunks_are_written_in_the_background(tmp_path):
    rec = Recorder(tmp_path, flock="f", chunk_rows=1000)
    for i in range(2500):
        rec.record("empty_loop", i, 1, monkey=f"bot-{i % 7}")
    assert len(rec) == 500  # two chunks handed to the writer already
    files = rec.close()
    assert len(files) == 3 and all(f.exists() for f in files)
    assert not list(tmp_path.glob(".*"))  # no claim markers or temp files left
    table = read_events(tmp_path)
    assert table.column("start_us").to_pylist() == list(range(2500))
    assert sorted(set(table.column("monkey").to_pylist())) == [f"bot-{i}" for i in range(7)]


def test_durations_are_integer_microseconds_and_files_compressed(tmp_path):
    rec = Recorder(tmp_path, flock="f")
    rec.record("x", 1, 2)
    path = rec.close()[0]
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(1).compression == "ZSTD"
    assert pq.read_schema(path).field("duration_us").type == "int64"


def test_recorders_sharing_a_directory_never_overwrite(tmp_path):
    first, second = Recorder(tmp_path, flock="a"), Recorder(tmp_path, flock="b")
    shard = Recorder(tmp_path, flock="c", shard=3)
    for rec in (first, second, shard):
        rec.record("x", 1, 1)
        rec.flush()
    for rec in (first, second, shard):
        rec.close()
    names = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-s003-00000.parquet"]
    table = read_events(tmp_path)
    assert sorted(table.column("flock").to_pylist()) == ["a", "b", "c"]
    assert sorted(table.column("shard").to_pylist()) == [0, 0, 3]


def test_many_tasks_of_one_loop_share_a_recorder(tmp_path):
    rec = Recorder(tmp_path, flock="f", chunk_rows=700)

    async def monkey(i):
        for _ in range(100):
            with rec.timed("empty_loop", monkey=f"bot-{i}"):
                await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(monkey(i) for i in range(50)))

    asyncio.run(main())
    rec.close()
    table = read_events(tmp_path)
    assert table.num_rows == 5000
    per_monkey = {}
    for m in table.column("monkey").to_pylist():
        per_monkey[m] = per_monkey.get(m, 0) + 1
    assert set(per_monkey.values()) == {100}


def test_threadsafe_recorder_keeps_rows_aligned(tmp_path):
    rec = Recorder(tmp_path, flock="f", chunk_rows=5000, threadsafe=True)

    def work(i):
        for n in range(20_000):
            rec.record("op", n, n, monkey=f"bot-{i}", rows=n)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    table = read_events(tmp_path)
    assert table.num_rows == 80_000
    assert table.column("start_us").to_pylist() == table.column("rows").to_pylist()


def test_reading_an_empty_dir_gives_an_empty_table(tmp_path):
    assert read_events(tmp_path).num_rows == 0
    assert Recorder(tmp_path).flush() is None


def test_an_abandoned_operation_is_not_a_failure(tmp_path):
    rec = Recorder(tmp_path, flock="f")

    async def main():
        async def request():
            with rec.timed("http_request"):
                await asyncio.sleep(10)

        task = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    rec.close()
    assert read_events(tmp_path).num_rows == 0


def test_lag_is_recorded_by_record_timed_and_channel(tmp_path):
    rec = Recorder(tmp_path, flock="f", business="b")
    rec.record("op", 1_000, 10, monkey="bot-a", lag_us=250)
    with rec.timed("op", monkey="bot-a", lag_us=7):
        pass
    channel = rec.channel("http_request", "bot-b", "/x")
    channel.ok(2_000, 30, 40)
    channel.ok(3_000, 31)
    channel.fail(4_000, 32, ValueError("refused"), 5)
    rec.close()
    rows = read_events(tmp_path).to_pylist()
    assert [r["lag_us"] for r in rows] == [250, 7, 40, 0, 5]
    assert [(r["flock"], r["business"], r["monkey"], r["target"]) for r in rows[2:]] == [
        ("f", "b", "bot-b", "/x")
    ] * 3
    assert [r["success"] for r in rows[2:]] == [True, True, False]
    assert rows[4]["error_class"] == "ValueError" and rows[4]["error"] == "refused"


def test_channel_survives_flushes_and_threadsafe_recorders(tmp_path):
    rec = Recorder(tmp_path / "a", chunk_rows=3)
    channel = rec.channel("op", "bot-a")
    for i in range(7):
        channel.ok(i, 1, i)
    rec.close()
    assert read_events(tmp_path / "a").column("lag_us").to_pylist() == list(range(7))
    locked = Recorder(tmp_path / "b", threadsafe=True)
    locked.channel("op", "bot-a").ok(1, 2, 3)
    locked.close()
    assert read_events(tmp_path / "b").column("lag_us").to_pylist() == [3]


def test_files_without_lag_read_as_unscheduled(tmp_path):
    """A file written before the lag column existed: every event reads as lag 0."""
    import pyarrow as pa

    old = events.schema().remove(events.schema().get_field_index("lag_us"))
    pq.write_table(
        pa.table(
            {
                "start_us": [1, 2],
                "duration_us": [10, 20],
                **{name: ["x", "y"] for name in events.STRING_COLUMNS},
                "success": [True, False],
                "error": ["", "boom"],
                "rows": [-1, -1],
                "shard": pa.array([0, 0], pa.int16()),
            }
        ).cast(old),
        tmp_path / "part-00000.parquet",
    )
    rec = Recorder(tmp_path)
    rec.record("op", 3, 30, lag_us=9)
    rec.close()
    table = read_events(tmp_path)
    assert table.schema == events.schema()
    assert table.column("lag_us").to_pylist() == [0, 0, 9]


def test_distinct_error_texts_are_bounded(tmp_path):
    # A service records for months: error texts with ids or times must not grow the codes
    # without end. Past the bound a new text is dropped, its class and earlier texts kept.
    from library.events import ERROR_TEXT_DROPPED, Recorder, read_events

    rec = Recorder(tmp_path / "events", flock="f", business="b")
    rec.max_combinations = 10
    for i in range(100):
        rec.record("op", i, 1, False, "bot-a", "", "HTTPError", f"request {i} failed")
    rec.record("op", 100, 1, False, "bot-a", "", "HTTPError", "request 3 failed")
    rec.record("op", 101, 1, True, "bot-a")
    assert len(rec._combos) <= 12
    rec.close()
    rows = read_events(tmp_path / "events").to_pylist()
    assert len(rows) == 102
    errors = [r["error"] for r in rows if not r["success"]]
    assert errors[:10] == [f"request {i} failed" for i in range(10)]
    assert set(errors[10:100]) == {ERROR_TEXT_DROPPED}
    assert errors[100] == "request 3 failed"  # a text seen before keeps its code
    assert {r["error_class"] for r in rows if not r["success"]} == {"HTTPError"}
