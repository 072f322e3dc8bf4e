"""The standing service's operations, on a real `service run` process driven over HTTP:

- `/summary`'s ``ci_manager`` is the run queue in mobu's CiManagerSummary shape (workers =
  the executor's slots with their run under way and the runs they ended, and the queued
  runs), filled by signed GitHub webhook deliveries and a generic event;
- the daily report is posted again with backoff while the webhook fails, once delivered never
  again, and its retries end when the service stops;
- a Dask flock paused with ``labs=keep`` keeps its shards (the same worker processes, their
  monkeys' tasks alive and idle) and resume lets the same monkeys go on; ``release`` still
  stops them.

GitHub cannot be installed here: its webhook deliveries are signed here as GitHub signs them
(X-Hub-Signature-256). The webhook receiver is a local aiohttp server standing in for
Slack's incoming webhooks (an HTTP POST of ``{"text", "blocks"}``), answering 503 to the
first posts as a webhook that is down would."""

from __future__ import annotations

import signal
import time

import httpx
import psutil
import pytest
import yaml

from library.eventstore import EventStore
from tests.integration.test_triggers_service import deliver
from tests.support.service import (
    ServiceProcess,
    bearer,
    dask_service,
    empty_flock,
    metric,
    wait_for,
    write_auth,
)
from tests.support.webhook import LocalServer

pytestmark = pytest.mark.integration
GITHUB_SECRET = "webhook-s3cret"  # the one `deliver` signs with
SLOW_RULES = [
    {
        "name": "slow check",
        "when": {"type": ["github.push", "deploy.finished"]},
        "do": [
            {
                "project": "example",
                "step": "test",
                "presets": ["sequential"],
                "vars": {"tests.example.names": ["alpha"], "tests.example.pause": 3},
            }
        ],
    }
]


def test_summary_ci_manager_is_the_run_queue(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(SLOW_RULES, sort_keys=False))
    secret = tmp_path / "secret"
    secret.write_text(GITHUB_SECRET + "\n")
    config = tmp_path / "service.yaml"
    section = {
        "triggers": {"concurrency": 1, "results_store": str(tmp_path / "results.sqlite")},
    }
    config.write_text(yaml.safe_dump({"service": section}))
    svc = ServiceProcess(
        tmp_path,
        "--config",
        str(config),
        "--state-dir",
        str(tmp_path / "state"),
        "--auth-file",
        str(write_auth(tmp_path / "auth.yaml")),
        "--github-secret-file",
        str(secret),
        "--rules",
        str(rules),
    ).wait_ready()
    try:

        def ci() -> dict:
            return httpx.get(svc.url + "/summary", timeout=30).json()["ci_manager"]

        idle = ci()
        assert idle == {
            "workers": [
                {
                    "user": {"username": "service-slot-1", "uidnumber": None, "gidnumber": None},
                    "num_processed": 0,
                    "current_job": None,
                }
            ],
            "num_queued": 0,
        }
        shas = ["a" * 40, "b" * 40]
        for number, sha in enumerate(shas):
            push = {
                "ref": "refs/heads/main",
                "after": sha,
                "repository": {"full_name": "org/repo", "clone_url": "https://example.org/r.git"},
            }
            assert deliver(svc, "push", push, f"push-{number}").status_code == 202
        deploy = {"type": "deploy.finished", "id": "argo-7", "app": "nublado"}
        answer = httpx.post(svc.url + "/events", json=deploy, headers=bearer("admin"))
        assert answer.status_code == 202, answer.text
        deploy_run = answer.json()["runs"][0]["id"]

        # One slot: the first push runs, the second and the deploy wait.
        busy = wait_for(lambda: (lambda s: s if s["workers"][0]["current_job"] else None)(ci()))
        job = busy["workers"][0]["current_job"]
        assert job["commit_url"] == f"https://github.com/org/repo/commit/{shas[0]}"
        assert job["rule"] == "rule 1 (slow check)" and job["event_type"] == "github.push"
        assert job["event_id"] == "github:push-0"
        assert (job["project"], job["step"], job["attempt"]) == ("example", "test", 1)
        assert job["started"] is not None
        assert busy["num_queued"] == 2 and busy["workers"][0]["num_processed"] == 0
        run = httpx.get(f"{svc.url}/runs/{job['run_id']}").json()
        assert run["state"] == "running" and run["data"]["git_sha"] == shas[0]

        # The deploy names no commit: its job has no commit_url.
        deploying = wait_for(
            lambda: (
                lambda s: (
                    s
                    if (s["workers"][0]["current_job"] or {}).get("run_id") == deploy_run
                    else None
                )
            )(ci()),
            120,
            "the deploy's run",
        )
        job = deploying["workers"][0]["current_job"]
        assert job["commit_url"] is None and job["event_type"] == "deploy.finished"
        assert deploying["num_queued"] == 0
        assert deploying["workers"][0]["num_processed"] == 2

        done = wait_for(
            lambda: (lambda s: s if s["workers"][0]["num_processed"] == 3 else None)(ci()),
            120,
            "the three runs",
        )
        assert done["workers"][0]["current_job"] is None and done["num_queued"] == 0
        states = [r["state"] for r in httpx.get(svc.url + "/runs").json()["runs"]]
        assert states == ["succeeded"] * 3
    finally:
        assert svc.stop() == 0


@pytest.fixture
def local():
    server = LocalServer().start()
    yield server
    server.stop()


def report_config(tmp_path, hook: str, retry: dict) -> str:
    config = tmp_path / "config.yaml"
    section = {
        "state_dir": "state",
        "report": {"webhook_url": hook, "enabled": True, "time": "08:00", "retry": retry},
    }
    config.write_text(yaml.safe_dump({"service": section}))
    return str(config)


def test_daily_report_is_retried_until_delivered_once(local, tmp_path):
    hook = f"{local.base}/hooks/T000-report"
    config = report_config(tmp_path, hook, {"attempts": 5, "delay": "1s", "within": "1m"})
    auth = str(write_auth(tmp_path / "auth.yaml"))
    svc = ServiceProcess(tmp_path, "--config", config, "--auth-file", auth).wait_ready()
    local.fail_posts = 2  # the webhook is down for the first two posts
    try:
        with httpx.Client(base_url=svc.url, timeout=30) as c:
            first = c.post("/report", headers=bearer("admin")).json()
            assert first["delivered"] is False and first["state"] == "retrying"
            assert first["attempts"] == 1 and first["next_attempt"] is not None
            assert first["error"] == "webhook answered 503: unavailable"
            (post,) = local.wait_posts(1, timeout=30)
            assert post["json"]["text"] == first["text"]
            entry = wait_for(
                lambda: (lambda e: e if e["state"] == "delivered" else None)(
                    c.get("/report").json()["history"][0]
                ),
                10,
                "the report's delivered state",
            )
            assert entry["delivered"] is True and entry["attempts"] == 3
            assert [f["error"] for f in entry["failures"]] == [
                "webhook answered 503: unavailable"
            ] * 2
            assert entry["next_attempt"] is None and entry["delivered_at"]
            assert len(local.failed_posts) == 2
            time.sleep(4)  # longer than the next backoff would have been: no other post
            assert len(local.posts) == 1 and len(local.failed_posts) == 2

            # Down for good: retried within its bounds, then failed.
            local.fail_posts = 100
            again = c.post("/report", headers=bearer("admin")).json()
            assert again["state"] == "retrying"
            history = wait_for(
                lambda: (lambda h: h if h[0]["state"] == "failed" else None)(
                    c.get("/report").json()["history"]
                ),
                30,
                "the retries to give up",
            )
            assert history[0]["attempts"] == 5 and len(history[0]["failures"]) == 5
            assert history[1]["state"] == "delivered"  # the earlier report is unchanged
            assert len(local.posts) == 1 and len(local.failed_posts) == 7
    finally:
        assert svc.stop() == 0
    out = svc.output()
    assert "delivered at attempt 3" in out and "given up after 5 attempts" in out
    assert "T000-report" not in out  # the webhook URL is a secret


def test_report_retries_end_when_the_service_stops(local, tmp_path):
    hook = f"{local.base}/hooks/T000-report"
    config = report_config(tmp_path, hook, {"attempts": 5, "delay": "10m", "within": "1h"})
    auth = str(write_auth(tmp_path / "auth.yaml"))
    svc = ServiceProcess(tmp_path, "--config", config, "--auth-file", auth).wait_ready()
    local.fail_posts = 100
    try:
        posted = httpx.post(svc.url + "/report", headers=bearer("admin"), timeout=30).json()
        assert posted["state"] == "retrying"
    finally:
        began = time.monotonic()
        assert svc.stop(signal.SIGTERM) == 0
    assert time.monotonic() - began < 20  # not the ten minutes of the next attempt
    assert len(local.failed_posts) == 1 and local.posts == []
    assert "the service stopped after 1 attempt(s)" in svc.output()


def _workers(svc: ServiceProcess) -> set[int]:
    return {
        p.pid
        for p in psutil.Process(svc.proc.pid).children(recursive=True)
        if "spawn_main" in " ".join(p.cmdline())
    }


def test_dask_flock_paused_with_labs_kept_keeps_its_shards(tmp_path):
    flock = empty_flock("dist-k", 4, "bot-mobu-keep")
    svc = dask_service(tmp_path, {"flocks": "dist-*", "workers": 2}, pause_labs="keep")
    try:
        with httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=120) as c:
            assert c.put("/flocks", json=flock).status_code == 201

            def running() -> bool:
                states = [m["state"] for m in c.get("/flocks/dist-k").json()["monkeys"]]
                summary = c.get("/flocks/dist-k/summary").json()
                return states == ["RUNNING"] * 4 and summary["success_count"] > 20

            wait_for(running, 90, "the shards to run")
            workers = _workers(svc)
            assert len(workers) == 2

            # Paused with the service's pause_labs (keep): the shards stay, their monkeys idle.
            paused = c.post("/flocks/dist-k/pause").json()
            assert paused["paused"] is True
            assert [m["state"] for m in c.get("/flocks/dist-k").json()["monkeys"]] == ["PAUSED"] * 4
            time.sleep(4)  # the shards see the pause within a second, publish within two
            frozen = c.get("/flocks/dist-k/summary").json()["success_count"]
            time.sleep(4)
            assert c.get("/flocks/dist-k/summary").json()["success_count"] == frozen
            assert _workers(svc) == workers  # the same worker processes
            for shard in ("0", "1"):  # each shard's monkeys' tasks alive, waiting
                active = metric(svc, "bosun_shard_active_monkeys", flock="dist-k", shard=shard)
                assert active == 2
            log = c.get("/flocks/dist-k/monkeys/bot-mobu-keep1/log").text
            assert "paused (labs kept" in log

            # Resumed: the same monkeys go on (no new business started, no monkey stopped).
            assert c.post("/flocks/dist-k/resume").status_code == 200
            wait_for(
                lambda: c.get("/flocks/dist-k/summary").json()["success_count"] > frozen + 20,
                30,
                "the monkeys to go on",
            )
            assert [m["state"] for m in c.get("/flocks/dist-k").json()["monkeys"]] == [
                "RUNNING"
            ] * 4
            assert _workers(svc) == workers

            # labs=release still stops the shards, and resume starts them again.
            assert c.post("/flocks/dist-k/pause", params={"labs": "release"}).status_code == 200
            log = c.get("/flocks/dist-k/monkeys/bot-mobu-keep1/log").text
            assert "paused (shards stopped, labs released)" in log
            assert c.post("/flocks/dist-k/resume").status_code == 200
            wait_for(running, 90, "the new shards to run")
            assert c.delete("/flocks/dist-k").status_code == 204
    finally:
        assert svc.stop() == 0
    rows = EventStore(tmp_path / "state" / "events").read(columns=["operation", "monkey"])
    operations = rows.column("operation").to_pylist()
    # One start and one stop per monkey for the kept pause (none), and one each for the
    # released one's shards: two of each in all.
    assert operations.count("monkey_start") == 8, operations.count("monkey_start")
    assert operations.count("monkey_stop") == 8


def test_dask_flock_keeps_its_labs_on_the_hub_while_paused(tmp_path, sandbox):
    """On the sandbox's hub, two labs from two Dask shards: pause (keep) leaves both running
    while the counts stand still, resume runs code in them again, pause (release) deletes
    them (the answer waits for the shards' shutdowns)."""
    import urllib.error

    from tests.integration.test_scale import hub_get

    prefix = "bot-svcdaskkeep"

    def ready_labs() -> list[str]:
        # Each user read directly: the hub's user list is paginated.
        out = []
        for name in labs:
            try:
                servers = hub_get(sandbox, f"/users/{name}").get("servers") or {}
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # not made yet
                    continue
                raise
            if servers and all(s.get("ready") for s in servers.values()):
                out.append(name)
        return out

    def any_lab() -> bool:
        for name in labs:
            try:
                if hub_get(sandbox, f"/users/{name}").get("servers"):
                    return True
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
        return False

    config = tmp_path / "config.yaml"
    section = {"state_dir": "state", "dask": [{"flocks": "lab-*", "workers": 2}]}
    config.write_text(yaml.safe_dump({"service": section}))
    flock = {
        "name": "lab-dask",
        "count": 2,
        "user_spec": {"username_prefix": prefix},
        "scopes": ["exec:notebook"],
        "business": {
            "type": "NubladoPythonLoop",
            "options": {
                "code": "print(6*7)",
                "execution_idle_time": "500ms",
                "max_executions": 100_000,
                "spawn_timeout": "120s",
                "delete_timeout": "60s",
            },
        },
    }
    labs = [f"{prefix}1", f"{prefix}2"]
    svc = ServiceProcess(
        tmp_path, "--config", str(config), "--auth-file", str(write_auth(tmp_path / "a.yaml"))
    ).wait_ready()
    try:
        with httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=180) as c:

            def successes() -> int:
                return c.get("/flocks/lab-dask/summary").json()["success_count"]

            assert c.put("/flocks", json=flock).status_code == 201
            wait_for(lambda: ready_labs() == labs, 240, "both labs ready")
            wait_for(lambda: successes() >= 4, 120, "code run in both labs")

            assert c.post("/flocks/lab-dask/pause", params={"labs": "keep"}).status_code == 200
            time.sleep(5)  # seen by the shards within 1 s, the execution under way ends
            count = successes()
            time.sleep(4)
            assert successes() == count
            assert ready_labs() == labs  # kept

            assert c.post("/flocks/lab-dask/resume").status_code == 200
            wait_for(lambda: successes() > count + 4, 60, "executions in the kept labs")

            assert c.post("/flocks/lab-dask/pause", params={"labs": "release"}).status_code == 200
            assert not any_lab()
            assert c.delete("/flocks/lab-dask").status_code == 204
    finally:
        assert svc.stop() == 0
    assert not any_lab()
