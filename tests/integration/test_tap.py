"""The TAP client, discovery and the tap toolbox group against the sandbox's real DaCHS."""

from __future__ import annotations

import json
import socket
import textwrap

import numpy as np
import pytest
import requests

from library import env, run
from library.errors import UserError
from library.sandbox import catalogue
from library.tap.client import TapClient
from library.tap.errors import TapConnectionError, TapHTTPError, TapQueryError, TapTimeout

pytestmark = pytest.mark.integration

CONE = (60.0, -32.0, 0.3)
# About 4 s of PostgreSQL work (a 2,000 x 60,000 join): long enough to outlast a short timeout,
# short enough that the database is idle again soon after the job is killed.
SLOW_ADQL = (
    "SELECT COUNT(*) FROM sandbox.objects AS a JOIN sandbox.objects AS b "
    "ON a.extendedness = b.extendedness WHERE a.objectId < 1000002000"
)


@pytest.fixture(scope="module")
def tap_url(sandbox):
    assert sandbox.tap_url, "the sandbox runs without its TAP service (see sandbox status)"
    return sandbox.tap_url


@pytest.fixture(scope="module")
def objects():
    return catalogue.objects()


def expected_cone_ids(objects, ra, dec, radius) -> set[int]:
    ra0, dec0 = np.radians(ra), np.radians(dec)
    ras, decs = np.radians(objects["ra"]), np.radians(objects["dec"])
    cos_d = np.sin(dec0) * np.sin(decs) + np.cos(dec0) * np.cos(decs) * np.cos(ras - ra0)
    inside = np.degrees(np.arccos(np.clip(cos_d, -1, 1))) <= radius
    return set(objects["objectId"][inside].tolist())


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_cone_query_returns_exactly_the_catalogue_rows(tap_url, objects, use_async):
    ra, dec, radius = CONE
    adql = (
        f"SELECT objectId FROM sandbox.objects WHERE "
        f"CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {radius})) = 1"
    )
    result = TapClient(tap_url, timeout=60).run(adql, use_async=use_async, keep_table=True)
    got = {int(v) for v in result.table.to_table()["objectId"]}
    assert got == expected_cone_ids(objects, ra, dec, radius)
    assert result.rows == len(got) > 50
    assert result.bytes > 0 and result.total_s > 0
    if use_async:
        assert result.job_deleted is True
        assert result.queued_s >= 0 and result.executing_s > 0 and result.fetch_s > 0
        assert requests.get(result.job_url, timeout=10).status_code == 404


def test_join_returns_the_sources_of_one_object(tap_url, objects):
    object_id = int(objects["objectId"][1234])
    sources = catalogue.sources(objects)
    expected = int((sources["objectId"] == object_id).sum())
    adql = (
        f"SELECT s.sourceId FROM sandbox.objects AS o JOIN sandbox.sources AS s "
        f"ON o.objectId = s.objectId WHERE o.objectId = {object_id}"
    )
    assert TapClient(tap_url).run(adql).rows == expected >= 1


def test_row_cap_flags_an_overflow(tap_url):
    result = TapClient(tap_url, max_rows=5).run("SELECT objectId FROM sandbox.objects")
    assert result.rows == 5 and result.overflow


def test_byte_cap_fails_the_query(tap_url):
    client = TapClient(tap_url, max_bytes=10_000)
    result = client.execute("SELECT TOP 2000 * FROM sandbox.objects")
    assert not result.success and result.error_class == "TapResultTooLarge"
    assert "10000 bytes" in result.error


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_bad_adql_gives_the_service_message_in_one_line(tap_url, use_async):
    client = TapClient(tap_url, timeout=60)
    with pytest.raises(TapQueryError) as err:
        client.run("SELECT nosuchcolumn FROM sandbox.objects", use_async=use_async)
    message = str(err.value)
    assert "nosuchcolumn" in message and "could not be located" in message
    assert "\n" not in message
    if use_async:
        assert err.value.result.job_deleted is True


def test_async_timeout_aborts_and_deletes_the_job(tap_url):
    client = TapClient(tap_url, timeout=2.0)
    result = client.execute(SLOW_ADQL, use_async=True)
    assert not result.success and result.error_class == "TapTimeout"
    assert "timed out after 2 s" in result.error and "deleted" in result.error
    assert result.job_deleted is True
    assert requests.get(result.job_url, timeout=10).status_code == 404
    assert result.total_s < 15.0  # the join alone runs far longer: the timeout cut it short


def test_sync_timeout_is_reported(tap_url):
    with pytest.raises(TapTimeout, match="timed out after 1 s"):
        TapClient(tap_url, timeout=1.0).run(SLOW_ADQL)


def test_dead_service_is_a_one_line_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/tap"
    for use_async in (False, True):
        with pytest.raises(TapConnectionError) as err:
            TapClient(url, timeout=5).run("SELECT 1", use_async=use_async)
        assert str(err.value).startswith(f"cannot connect to TAP service {url}/")
        assert str(err.value).endswith("connection refused")


def test_wrong_path_names_status_and_url(tap_url):
    base = tap_url.rsplit("/", 1)[0] + "/no/such/service"
    with pytest.raises(TapHTTPError, match=rf"HTTP 404 .*from {base}/sync"):
        TapClient(base).run("SELECT 1")


def test_query_command_writes_the_result(tap_url, tmp_path):
    with env.using_artifact_dir(tmp_path):
        result = run.run_toolbox(
            "tap",
            "query",
            service=tap_url,
            use_async=True,
            adql="SELECT TOP 3 objectId, ra, dec FROM sandbox.objects",
        )
    assert result["rows"] == 3 and result["mode"] == "async" and result["job_deleted"]
    (cmd_dir,) = tmp_path.glob("*__tap__query")
    assert (cmd_dir / "result.vot").stat().st_size > 0
    assert "SELECT TOP 3" in (cmd_dir / "query.adql").read_text()


def test_query_command_bad_adql_is_a_user_error(tap_url, tmp_path):
    with env.using_artifact_dir(tmp_path), pytest.raises(UserError, match="Could not parse"):
        run.run_toolbox("tap", "query", service=tap_url, adql="SELEKT 1")


def test_tables_command(tap_url, tmp_path):
    with env.using_artifact_dir(tmp_path):
        result = run.run_toolbox("tap", "tables", service=tap_url)
    assert {"sandbox.objects", "sandbox.sources", "tap_schema.tables"} <= set(result["tables"])


def _events(cmd_dir):
    import pyarrow.parquet as pq

    files = sorted((cmd_dir / "events").glob("*.parquet"))
    assert files, f"no events in {cmd_dir}"
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()


def test_query_set_at_concurrency_10_records_every_query(tap_url, tmp_path):
    with env.using_artifact_dir(tmp_path):
        summary = run.run_toolbox(
            "tap",
            "run_query_set",
            service=tap_url,
            query_set="bosun-sandbox",
            count=4,
            concurrency=10,
            seed=123,
        )
    (cmd_dir,) = tmp_path.glob("*__tap__run_query_set")
    assert summary["count"] == 40 and summary["failures"] == 0
    events = _events(cmd_dir)
    assert len(events) == 40
    assert {e["operation"] for e in events} == {"tap_query"}
    assert {e["monkey"] for e in events} == {f"worker-{i:03d}" for i in range(10)}
    assert all(e["success"] and e["rows"] >= 0 for e in events)
    queries = [json.loads(line) for line in (cmd_dir / "queries.jsonl").read_text().splitlines()]
    assert len(queries) == 40
    assert sorted(e["target"] for e in events) == sorted(q["template"] for q in queries)
    assert (cmd_dir / "seed").read_text().strip() == "123"
    on_disk = json.loads((cmd_dir / "summary.json").read_text())
    assert sum(t["count"] for t in on_disk["templates"].values()) == 40
    assert all(
        t["p50_ms"] > 0 and t["p95_ms"] >= t["p50_ms"] for t in on_disk["templates"].values()
    )
    assert "p50 ms" in (cmd_dir / "summary.txt").read_text()


def test_same_seed_renders_the_same_queries(tap_url, tmp_path):
    runs = []
    for i in range(2):
        with env.using_artifact_dir(tmp_path / str(i)):
            run.run_toolbox("tap", "run_query_set", service=tap_url, count=3, seed=99)
        (cmd_dir,) = (tmp_path / str(i)).glob("*__tap__run_query_set")
        runs.append((cmd_dir / "queries.jsonl").read_text())
    assert runs[0] == runs[1]


def test_async_query_set_run(tap_url, tmp_path):
    with env.using_artifact_dir(tmp_path):
        summary = run.run_toolbox(
            "tap", "run_query_set", service=tap_url, count=2, concurrency=3, seed=5, use_async=True
        )
    assert summary["mode"] == "async" and summary["count"] == 6 and summary["failures"] == 0
    (cmd_dir,) = tmp_path.glob("*__tap__run_query_set")
    rows = [json.loads(line) for line in (cmd_dir / "results.jsonl").read_text().splitlines()]
    assert all(r["job_deleted"] and r["executing_s"] > 0 for r in rows)


def test_discovery_skips_templates_whose_tables_are_missing(tap_url, tmp_path):
    qs_dir = tmp_path / "mixed"
    qs_dir.mkdir()
    (qs_dir / "params.yaml").write_text("min_ra: 55\nmax_ra: 65\nmin_dec: -35\nmax_dec: -28\n")
    (qs_dir / "here.sql").write_text(
        textwrap.dedent("""\
        SELECT '{{ query_id }}' AS q, objectId FROM sandbox.objects WHERE
        CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {{ ra }}, {{ dec }}, {{ radius }})) = 1
        """)
    )
    (qs_dir / "elsewhere.sql").write_text(
        "SELECT * FROM dp02_dc2_catalogs.Object WHERE objectId = {{ object }}\n"
    )
    with env.using_artifact_dir(tmp_path / "art"):
        summary = run.run_toolbox(
            "tap", "run_query_set", service=tap_url, query_set=str(qs_dir), count=5, seed=1
        )
    assert summary["failures"] == 0 and summary["count"] == 5
    assert set(summary["templates"]) == {"here"}
    assert "dp02_dc2_catalogs.Object not in the service" in summary["skipped"]["elsewhere"]
    (cmd_dir,) = (tmp_path / "art").glob("*__tap__run_query_set")
    assert "elsewhere" in (cmd_dir / "summary.txt").read_text()


def test_dp02_set_runs_only_what_the_sandbox_has(tap_url, tmp_path):
    with env.using_artifact_dir(tmp_path):
        summary = run.run_toolbox(
            "tap", "run_query_set", service=tap_url, query_set="bosun-dp02", count=2, seed=1
        )
    assert set(summary["templates"]) == {"tap-schema"} and summary["failures"] == 0
    assert len(summary["skipped"]) == 7


def test_failures_fail_the_command_with_the_first_error(tap_url, tmp_path):
    qs_dir = tmp_path / "bad"
    qs_dir.mkdir()
    (qs_dir / "params.yaml").write_text("{}\n")
    (qs_dir / "typo.sql").write_text("SELECT nosuchcolumn FROM sandbox.objects\n")
    with env.using_artifact_dir(tmp_path / "art"), pytest.raises(UserError) as err:
        run.run_toolbox(
            "tap", "run_query_set", service=tap_url, query_set=str(qs_dir), count=2, seed=1
        )
    assert "2 of 2 queries failed" in str(err.value) and "nosuchcolumn" in str(err.value)
