"""A spooling recorder (the load engine's): raw chunks during the load, the same Parquet after,
and chunks a killed process left encoded by the next reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from library.events import Recorder, encode_spools, read_events
from library.report.parse import read_run

REPO = Path(__file__).resolve().parents[2]


def _record(rec: Recorder, n: int) -> None:
    for i in range(n):
        ok = i % 5 != 0
        rec.record(
            "http_request",
            1_700_000_000_000_000 + i * 1000,
            100 + i,
            ok,
            f"bot-{i % 7}",
            f"/t{i % 3}",
            "" if ok else "ClientError",
            "" if ok else f"refused {i % 4}",
            rows=i if i % 2 else -1,
            flock="f" if i % 2 else "g",
            lag_us=i * 3,
        )


def test_spooled_chunks_encode_to_the_same_events_as_direct_writes(tmp_path):
    direct = Recorder(tmp_path / "direct", flock="f", business="HTTPLoop", chunk_rows=17)
    spooled = Recorder(
        tmp_path / "spooled", flock="f", business="HTTPLoop", chunk_rows=17, spool=True
    )
    _record(direct, 100)
    _record(spooled, 100)
    direct.close()
    spooled.close(encode=False)
    # During the load: raw chunks only, no Parquet file under a name a reader would take.
    visible = [p for p in (tmp_path / "spooled").iterdir() if not p.name.startswith(".")]
    assert sorted(p.suffix for p in visible) == [".spool"] * 6
    assert read_events(tmp_path / "spooled").num_rows == 0
    spooled.encode()
    names = sorted(p.name for p in (tmp_path / "spooled").iterdir())
    assert names == [f"part-{i:05d}.parquet" for i in range(6)]
    assert read_events(tmp_path / "spooled").equals(read_events(tmp_path / "direct"))


def test_a_killed_runs_spools_are_encoded_by_the_next_reader(tmp_path):
    events_dir = tmp_path / "000__scale__run" / "events"
    rec = Recorder(events_dir, flock="f", business="HTTPLoop", chunk_rows=10, spool=True)
    _record(rec, 25)
    rec.flush()
    rec.wait()  # the last periodic flush before the kill: nothing encoded
    assert len(list(events_dir.glob("*.spool"))) == 3
    run = read_run(tmp_path)
    assert run.problems == []
    assert len(run.events.start_us) == 25
    assert (
        sorted(p.suffix for p in events_dir.iterdir() if not p.name.startswith("."))
        == [".parquet"] * 3
    )
    assert encode_spools(events_dir) == []  # nothing left


def test_a_truncated_spool_is_reported_and_kept(tmp_path):
    events_dir = tmp_path / "000__scale__run" / "events"
    rec = Recorder(events_dir, chunk_rows=10, spool=True)
    _record(rec, 10)
    rec.wait()
    (spool,) = events_dir.glob("*.spool")
    spool.write_bytes(spool.read_bytes()[:-20])
    with pytest.raises(ValueError, match="truncated events spool"):
        encode_spools(events_dir)
    run = read_run(tmp_path)
    assert len(run.problems) == 1 and "truncated events spool" in run.problems[0]
    assert spool.exists()  # kept as found, for whoever can mend it


def test_a_file_that_is_not_a_spool_is_refused_and_kept(tmp_path):
    spool = tmp_path / "part-00000.spool"
    spool.write_bytes(b"[1, 2]\n\x00\x01")
    with pytest.raises(ValueError, match="not an events spool"):
        encode_spools(tmp_path)
    assert spool.read_bytes() == b"[1, 2]\n\x00\x01"


def test_a_spool_claimed_by_another_reader_is_left_to_it(tmp_path):
    rec = Recorder(tmp_path, chunk_rows=10, spool=True)
    _record(rec, 10)
    rec.wait()
    (spool,) = tmp_path.glob("*.spool")
    claimed = tmp_path / f".{spool.name}.{os.getpid()}.1"  # by a process that is alive
    os.rename(spool, claimed)
    assert encode_spools(tmp_path) == []
    assert claimed.exists()
    rec.close()  # the recorder's own encode finds it gone too, and does not fail


def test_a_spool_whose_claimant_died_while_encoding_is_encoded_by_the_next_reader(tmp_path):
    rec = Recorder(tmp_path, chunk_rows=10, spool=True)
    _record(rec, 10)
    rec.wait()
    (spool,) = tmp_path.glob("*.spool")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    os.rename(spool, tmp_path / f".{spool.name}.{dead}.1")  # claimed, then killed
    assert encode_spools(tmp_path) == [spool.with_suffix(".parquet")]
    assert read_events(tmp_path).num_rows == 10


LOAD_PROCESS = """
import json, sys
from pathlib import Path
from library.flock.engine import Engine, RunSettings, run_flocks
from library.flock.models import parse_flocks

seen = {}
write_records = Engine._write_records
def look(self):
    seen.update({m: m in sys.modules for m in ("numpy", "pyarrow")})
    write_records(self)
Engine._write_records = look
flocks = parse_flocks(json.loads(sys.argv[1]), "flocks")
run_flocks(flocks, Path(sys.argv[2]), RunSettings(duration=2.5, live=False, handle_signals=False))
print(json.dumps(seen))
"""


def test_the_load_runs_without_pyarrow_or_numpy_in_its_process(tmp_path):
    """Both are loaded only to encode, after the load (~50 MiB, more than a thousand monkeys'
    own state); the health sampler's percentiles run every second of the load."""
    flocks = [
        {
            "name": "e",
            "count": 3,
            "user_spec": {"username_prefix": "bot-e"},
            "scopes": [],
            "business": {"type": "EmptyLoop", "options": {"idle_time": 0.01}},
        }
    ]
    out = subprocess.run(
        [sys.executable, "-c", LOAD_PROCESS, json.dumps(flocks), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out.splitlines()[-1]) == {"numpy": False, "pyarrow": False}
    assert read_events(tmp_path).num_rows > 10
    assert list((tmp_path / "health").glob("*.parquet"))


def test_a_scale_runs_summary_counts_what_a_dead_shard_left_spooled(tmp_path):
    import yaml

    from library.flock.runner import ScaleRun

    flocks = tmp_path / "flocks.yaml"
    flock = {
        "name": "e",
        "count": 2,
        "user_spec": {"username_prefix": "bot-e"},
        "scopes": [],
        "business": {"type": "EmptyLoop", "options": {"idle_time": "100ms"}},
    }
    flocks.write_text(yaml.safe_dump([flock]))
    out = tmp_path / "run"
    dead = Recorder(out / "events", flock="e", business="EmptyLoop", shard=1, spool=True)
    for i in range(5):
        dead.record("monkey_error", 1_700_000_000_000_000 + i, 10, False, "bot-e9", "", "X", "x")
    dead.flush()  # and then the shard died
    result = ScaleRun.prepare(flocks, duration="1s").execute(out, live=False, min_success_pct=0)
    assert result["flocks"]["e"]["failures"] == 5
    assert not list((out / "events").glob("*.spool"))
