"""A service flock on a local Dask cluster: the service is its control plane. Its summary,
monkeys and /metrics show the shards merged, refreshed at least every 5 s; a shard whose
worker is killed shows its monkeys as failed; pause and resume stop and restart the shards;
the shards' events land in the service's events store."""

from __future__ import annotations

import signal
import time

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from library.eventstore import EventStore
from tests.support.service import bearer, dask_service, empty_flock, metric

pytestmark = pytest.mark.integration


def test_flock_on_dask_shards(tmp_path):
    flock = empty_flock("dist-a", 4, "bot-mobu-dist")
    svc = dask_service(tmp_path, {"flocks": "dist-*", "workers": 2})
    try:
        with httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=120) as c:
            assert c.put("/flocks", json=flock).status_code == 201
            deadline = time.monotonic() + 90
            while c.get("/flocks/dist-a/summary").json()["success_count"] == 0:
                assert time.monotonic() < deadline, svc.output()[-3000:]
                time.sleep(0.5)
            # Refreshed at least every 5 s: the merged count moves within every 5 s.
            changes, last, t_last = [], None, time.monotonic()
            end = time.monotonic() + 12
            while time.monotonic() < end:
                count = c.get("/flocks/dist-a/summary").json()["success_count"]
                now = time.monotonic()
                if count != last:
                    changes.append(now - t_last)
                    last, t_last = count, now
                time.sleep(0.25)
            gaps = changes[1:] + [time.monotonic() - t_last]
            assert len(changes) >= 3 and max(gaps) <= 5.0, gaps
            states = [m["state"] for m in c.get("/flocks/dist-a").json()["monkeys"]]
            assert states == ["RUNNING"] * 4
            assert metric(svc, "bosun_monkeys", flock="dist-a", state="RUNNING") == 4
            loops = metric(svc, "bosun_operations_total", flock="dist-a",
                            operation="empty_loop", result="success")  # fmt: skip
            assert loops > 0

            for shard in ("0", "1"):  # each shard's own engine health
                rss = metric(svc, "bosun_shard_resident_memory_bytes", flock="dist-a",
                              shard=shard)  # fmt: skip
                assert rss > 10 << 20
                active = metric(svc, "bosun_shard_active_monkeys", flock="dist-a", shard=shard)
                assert active == 2

            # A worker dies: its shard's monkeys show as failed.
            workers = [
                p
                for p in psutil.Process(svc.proc.pid).children(recursive=True)
                if "spawn_main" in " ".join(p.cmdline())
            ]
            assert len(workers) == 2, [p.cmdline() for p in workers]
            workers[0].send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 60
            while True:
                data = c.get("/flocks/dist-a").json()
                states = sorted(m["state"] for m in data["monkeys"])
                if states == ["ERROR", "ERROR", "RUNNING", "RUNNING"]:
                    break
                assert time.monotonic() < deadline, (states, svc.output()[-3000:])
                time.sleep(0.5)
            assert c.get("/flocks/dist-a/summary").json()["failure_count"] >= 2
            dead = [m["name"] for m in data["monkeys"] if m["state"] == "ERROR"]
            assert "died" in c.get(f"/flocks/dist-a/monkeys/{dead[0]}/log").text
            assert metric(svc, "bosun_monkeys", flock="dist-a", state="ERROR") == 2
            series = [
                (s.name, tuple(sorted(s.labels.items())))
                for f in text_string_to_metric_families(httpx.get(svc.base + "/metrics").text)
                for s in f.samples
            ]
            assert len(series) == len(set(series))  # the shards' and the service's, merged
            assert metric(svc, "bosun_operations_total", flock="dist-a",
                           operation="monkey_error", result="failure") == 2  # fmt: skip

            # Pause stops the shards; resume starts them again, on the restarted worker too.
            paused = c.post("/flocks/dist-a/pause").json()
            assert paused["paused"] is True
            states = [m["state"] for m in c.get("/flocks/dist-a").json()["monkeys"]]
            assert states == ["PAUSED"] * 4
            before = paused["success_count"]
            assert c.post("/flocks/dist-a/resume").status_code == 200
            deadline = time.monotonic() + 90
            while True:
                data = c.get("/flocks/dist-a").json()
                states = [m["state"] for m in data["monkeys"]]
                counts = c.get("/flocks/dist-a/summary").json()
                if states == ["RUNNING"] * 4 and counts["success_count"] > before:
                    break
                assert time.monotonic() < deadline, (states, svc.output()[-3000:])
                time.sleep(0.5)
            assert counts["failure_count"] >= 2  # the dead shard's failures are kept
            assert c.delete("/flocks/dist-a").status_code == 204
    finally:
        assert svc.stop() == 0
    table = EventStore(tmp_path / "state" / "events").read()
    rows = table.to_pydict()
    assert set(rows["shard"]) >= {0, 1}
    assert rows["error_class"].count("ShardDied") == 2
    assert rows["operation"].count("empty_loop") >= loops


def test_flock_on_a_running_dask_scheduler(tmp_path):
    """`scheduler: tcp://…`: a cluster the service did not start (a `dask scheduler` and a
    `dask worker` process of two workers on 127.0.0.1), its shards merged the same way."""
    import os
    import subprocess
    import sys

    from tests.support.service import REPO, free_port

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    }
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115 - closed below
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    svc = None
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    f"tcp://127.0.0.1:{port}",
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        from distributed import Client

        # The shards are as many as the scheduler's workers when the flock starts.
        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        flock = empty_flock("remote-a", 4, "bot-mobu-remote")
        svc = dask_service(tmp_path, {"flocks": "remote-*", "scheduler": f"tcp://127.0.0.1:{port}"})
        with httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=120) as c:
            assert c.put("/flocks", json=flock).status_code == 201
            deadline = time.monotonic() + 60
            while True:
                summary = c.get("/flocks/remote-a/summary").json()
                states = [m["state"] for m in c.get("/flocks/remote-a").json()["monkeys"]]
                if summary["success_count"] > 20 and states == ["RUNNING"] * 4:
                    break
                assert time.monotonic() < deadline, (summary, states, svc.output()[-3000:])
                time.sleep(0.5)
            assert metric(svc, "bosun_shard_active_monkeys", flock="remote-a", shard="1") == 2
            assert c.delete("/flocks/remote-a").status_code == 204
        assert svc.stop() == 0
        svc = None
    finally:
        if svc is not None:
            svc.stop()
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    table = EventStore(tmp_path / "state" / "events").read(columns=["shard", "operation"])
    assert set(table.column("shard").to_pylist()) == {0, 1}
    assert table.column("operation").to_pylist().count("monkey_stop") == 4


def test_flock_deleted_while_its_cluster_starts_leaves_no_worker(tmp_path):
    flock = empty_flock("brief", 2, "bot-mobu-brief")
    svc = dask_service(tmp_path, {"flocks": "*", "workers": 2})
    try:
        with httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=120) as c:
            assert c.put("/flocks", json=flock).status_code == 201
            assert c.delete("/flocks/brief").status_code == 204  # the cluster is starting
            service = psutil.Process(svc.proc.pid)
            # Long enough for the cluster to have started (a few seconds) and been closed.
            time.sleep(20)
            workers = [
                p for p in service.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())
            ]
            assert workers == [], svc.output()[-3000:]
            assert c.get("/flocks").json() == []
    finally:
        assert svc.stop() == 0
