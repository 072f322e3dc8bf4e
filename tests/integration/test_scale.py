"""`scale run` against the local sandbox: real labs, real TAP, real HTTP, real Dask workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from library.events import read_events

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def write_flocks(path: Path, flocks: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(flocks))
    return path


def command_dir(artifacts: Path) -> Path:
    (found,) = artifacts.glob("*__scale__run")
    return found


def hub_get(sandbox, path: str):
    request = urllib.request.Request(
        sandbox.hub_api_url.rstrip("/") + path,
        headers={"Authorization": f"token {sandbox.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def running_labs(sandbox, prefix: str, ready_only: bool = False) -> list[str]:
    """Users with a lab (pending or ready; only ready ones with `ready_only`)."""
    return [
        u["name"]
        for u in hub_get(sandbox, "/users")
        if u["name"].startswith(prefix)
        and u.get("servers")
        and (not ready_only or all(s.get("ready") for s in u["servers"].values()))
    ]


def scale_cli(tmp_path: Path, *args: str, extra_env: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, ARTIFACT_DIR=str(tmp_path / "artifacts"), CI="1", **(extra_env or {}))
    return subprocess.Popen(
        [sys.executable, str(REPO / "run_toolbox.py"), "scale", "run", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigint_mid_run_deletes_every_lab_and_leaves_complete_events(sandbox, tmp_path):
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "python",
                "count": 2,
                "user_spec": {"username_prefix": "bot-scalesig"},
                "scopes": [],
                "business": {
                    "type": "NubladoPythonLoop",
                    "options": {
                        "code": "print(6*7)",
                        "execution_idle_time": "200ms",
                        "max_executions": 1000,
                        "spawn_timeout": "120s",
                        "delete_timeout": "60s",
                    },
                },
            }
        ],
    )
    proc = scale_cli(tmp_path, "--flocks", str(flocks), "--duration", "10m")
    deadline = time.monotonic() + 180
    while len(running_labs(sandbox, "bot-scalesig", ready_only=True)) < 2:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "labs did not start within 180 s"
        time.sleep(1)
    time.sleep(6)  # let the monkeys open kernels and execute code for a moment
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert "SIGINT: stopping the monkeys" in output
    assert running_labs(sandbox, "bot-scalesig") == []
    out = command_dir(tmp_path / "artifacts")
    rows = read_events(out).to_pylist()
    ops = [r["operation"] for r in rows]
    assert ops.count("spawn_lab") == 2 and ops.count("delete_lab") == 2
    assert ops.count("monkey_stop") == 2
    assert ops.count("execute_code") >= 4
    assert all(r["success"] for r in rows if r["operation"] in ("delete_lab", "execute_code"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "SIGINT"
    assert summary["flocks"]["python"]["failures"] == 0
    assert sandbox.token not in (out / "log.txt").read_text()


def test_tap_query_set_flock(sandbox, tmp_path):
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "tap",
                "count": 4,
                "user_spec": {"username_prefix": "bot-scaletap"},
                "scopes": [],
                "business": {
                    "type": "TAPQuerySetRunner",
                    "restart": True,
                    "options": {"query_set": "bosun-sandbox", "idle_time": "500ms"},
                },
            }
        ],
    )
    proc = scale_cli(tmp_path, "--flocks", str(flocks), "--duration", "8s")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    out = command_dir(tmp_path / "artifacts")
    summary = json.loads((out / "summary.json").read_text())
    tap = summary["flocks"]["tap"]
    assert tap["started"] == 4 and tap["failures"] == 0 and tap["successes"] >= 8
    queries = [r for r in read_events(out).to_pylist() if r["operation"] == "tap_query"]
    assert all(r["rows"] >= 0 and r["target"] for r in queries)
    assert "• *tap*: 4 monkeys started" in (out / "summary.txt").read_text()


def test_http_flock_against_the_hub_api(sandbox, tmp_path):
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "http",
                "count": 50,
                "user_spec": {"username_prefix": "bot-scalehttp"},
                "scopes": [],
                "business": {
                    "type": "HTTPLoop",
                    "options": {
                        "url": sandbox.hub_api_url.rstrip("/") + "/",
                        "token_env": "SCALE_TEST_TOKEN",
                        "idle_time": "100ms",
                    },
                },
            }
        ],
    )
    proc = scale_cli(
        tmp_path,
        "--flocks",
        str(flocks),
        "--duration",
        "4s",
        extra_env={"SCALE_TEST_TOKEN": sandbox.token},
    )
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    out = command_dir(tmp_path / "artifacts")
    http = json.loads((out / "summary.json").read_text())["flocks"]["http"]
    assert http["failures"] == 0 and http["successes"] >= 200
    assert http["operations"]["http_request"]["p50_ms"] > 0
    for path in out.rglob("*"):
        if path.is_file():
            assert sandbox.token.encode() not in path.read_bytes(), path


def test_a_failing_http_flock_fails_the_command_and_its_testcase(sandbox, tmp_path):
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "noauth",
                "count": 3,
                "user_spec": {"username_prefix": "bot-scalenoauth"},
                "scopes": [],
                "business": {
                    "type": "HTTPLoop",
                    "options": {
                        "url": sandbox.hub_api_url.rstrip("/") + "/users",
                        "idle_time": "1s",
                    },
                },
            }
        ],
    )
    proc = scale_cli(tmp_path, "--flocks", str(flocks), "--duration", "2s")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "noauth: 0.00% success is below 95%" in output
    out = command_dir(tmp_path / "artifacts")
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    case = next(c for c in cases if c.get("name") == "noauth")
    assert float(case.get("time")) >= 0
    assert case.find("failure").get("message").startswith("0.00% success")
    errors = [r for r in read_events(out).to_pylist() if r["operation"] == "monkey_error"]
    assert len(errors) == 3 and {r["error_class"] for r in errors} == {"HTTPStatusError"}


def test_dask_two_workers_merge_events_from_both_shards(tmp_path):
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "empty",
                "count": 40,
                "user_spec": {"username_prefix": "bot-shard"},
                "scopes": [],
                "business": {"type": "EmptyLoop", "options": {"idle_time": "500ms"}},
            }
        ],
    )
    proc = scale_cli(tmp_path, "--flocks", str(flocks), "--duration", "4s", "--workers", "2")
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, output
    out = command_dir(tmp_path / "artifacts")
    table = read_events(out).to_pylist()
    by_shard: dict[int, set[str]] = {0: set(), 1: set()}
    for row in table:
        by_shard[row["shard"]].add(row["monkey"])
    assert by_shard[0] == {f"bot-shard{i:02d}" for i in range(1, 41, 2)}
    assert by_shard[1] == {f"bot-shard{i:02d}" for i in range(2, 41, 2)}
    starts = sorted(r["start_us"] for r in table if r["operation"] == "monkey_start")
    assert starts[-1] - starts[0] < 500_000  # both shards started together
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards"] == 2 and summary["dead_shards"] == []
    assert summary["flocks"]["empty"]["started"] == 40
    assert len(list((out / "health").glob("*.parquet"))) == 2


def test_a_dead_shard_is_reported_and_its_monkeys_count_as_failed(tmp_path):
    import dask
    from distributed import Client, LocalCluster

    from library.flock.runner import ScaleRun

    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "empty",
                "count": 10,
                "user_spec": {"username_prefix": "bot-dead"},
                "scopes": [],
                "business": {"type": "EmptyLoop", "options": {"idle_time": "200ms"}},
            }
        ],
    )
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        victim = pids[sorted(pids)[1]]  # the worker that runs shard 1

        def kill_later():
            time.sleep(6)  # after the common start (3 s) and some work
            os.kill(victim, signal.SIGKILL)

        import threading

        threading.Thread(target=kill_later, daemon=True).start()
        result = ScaleRun.prepare(flocks, duration="10s").execute(
            tmp_path / "out",
            scheduler=cluster.scheduler_address,
            live=False,
        )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [d["shard"] for d in summary["dead_shards"]] == [1]
    flock = summary["flocks"]["empty"]
    assert flock["failures"] == 5  # shard 1's monkeys: bot-dead02, 04, ... 10
    dead = [r for r in read_events(tmp_path / "out").to_pylist() if r["error_class"] == "ShardDied"]
    assert sorted(r["monkey"] for r in dead) == [f"bot-dead{i:02d}" for i in range(2, 11, 2)]
    assert "shard 1 died" in (tmp_path / "out" / "summary.txt").read_text()
    assert result["flocks"]["empty"]["failures"] == 5
    assert flock["success_pct"] < 100.0


def test_notebook_runner_list_runs_its_notebooks_once_and_the_run_ends(sandbox, tmp_path):
    import nbformat

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    cells = {
        "first.ipynb": "x = 6 * 7\nprint(x)",
        "second.ipynb": "assert 1 + 1 == 2",
        "skipped.ipynb": "raise RuntimeError('must not run')",
    }
    for name, code in cells.items():
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(code), nbformat.v4.new_markdown_cell("done")]
        )
        nbformat.write(nb, notebooks / name)
    # mobu's metadata: it needs an application the sandbox's discovery document does not list.
    butler = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise SystemExit(1)")])
    butler.metadata["mobu"] = {"required_applications": ["butler"]}
    nbformat.write(butler, notebooks / "needs-butler.ipynb")
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "notebooks",
                "count": 1,
                "users": [{"username": "bot-scalenb"}],
                "scopes": [],
                "business": {
                    "type": "NotebookRunnerList",
                    "options": {
                        "notebooks_dir": str(notebooks),
                        "collection_rules": [
                            {
                                "type": "intersect_union_of",
                                "patterns": ["first.ipynb", "second.ipynb", "needs-*"],
                            }
                        ],
                        "execution_idle_time": "100ms",
                        "spawn_timeout": "120s",
                    },
                },
            }
        ],
    )
    proc = scale_cli(tmp_path, "--flocks", str(flocks), "--duration", "5m")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    out = command_dir(tmp_path / "artifacts")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "finished"
    rows = read_events(out).to_pylist()
    assert [r["target"] for r in rows if r["operation"] == "notebook"] == [
        "first.ipynb",
        "second.ipynb",
    ]
    assert all(r["success"] for r in rows if r["operation"] in ("notebook", "cell"))
    assert [r["operation"] for r in rows].count("delete_lab") == 1
    assert running_labs(sandbox, "bot-scalenb") == []


def test_tap_query_runner_with_a_query_list(sandbox, tmp_path):
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "tapq",
                "count": 2,
                "user_spec": {"username_prefix": "bot-scaletapq"},
                "scopes": [],
                "business": {
                    "type": "TAPQueryRunner",
                    "options": {
                        "queries": [
                            "SELECT TOP 5 objectId FROM sandbox.objects",
                            "SELECT COUNT(*) AS n FROM sandbox.objects",
                        ],
                        "idle_time": "200ms",
                    },
                },
            }
        ],
    )
    proc = scale_cli(
        tmp_path, "--flocks", str(flocks), "--duration", "4s", "--tap-url", sandbox.tap_url
    )
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    queries = [
        r
        for r in read_events(command_dir(tmp_path / "artifacts")).to_pylist()
        if r["operation"] == "tap_query"
    ]
    assert len(queries) >= 4 and all(r["success"] for r in queries)
    assert {r["rows"] for r in queries if r["target"] == "query-1"} <= {5}
    assert {r["rows"] for r in queries if r["target"] == "query-2"} <= {1}
