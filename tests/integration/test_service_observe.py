"""What a running service says about itself, driven over HTTP as Prometheus, Slack and an
operator see it: /metrics parsed with prometheus_client's text parser, an alert firing once
and recovering against a local webhook receiver, mobu's daily report, windowed summaries.

The platform here is a local aiohttp endpoint the test switches between 200 and 500 (the
failure must be made to happen on cue); the webhook is a local receiver standing in for
Slack's incoming webhooks, whose contract is an HTTP POST of ``{"text", "blocks"}`` JSON.
"""

from __future__ import annotations

import time

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.service import ServiceProcess, bearer, wait_for, write_auth
from tests.support.webhook import LocalServer

pytestmark = pytest.mark.integration
SECRET = "T000-secret-hook-path"


@pytest.fixture
def local():
    server = LocalServer().start()
    yield server
    server.stop()


def web_flock(name: str, url: str, count: int = 2) -> dict:
    return {
        "name": name,
        "count": count,
        "user_spec": {"username_prefix": f"bot-mobu-{name}"},
        "scopes": [],
        "business": {
            "type": "HTTPLoop",
            "restart": True,
            "options": {"url": url, "idle_time": "100ms", "error_idle_time": "100ms"},
        },
    }


def metrics(svc: ServiceProcess) -> dict[str, list]:
    text = httpx.get(svc.base + "/metrics").text
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, []).extend(family.samples)
    return out


def value(samples, name: str, **labels) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_alerts_report_and_windows(local, tmp_path):
    hook = f"{local.base}/hooks/{SECRET}"
    flock_file = tmp_path / "flocks.yaml"
    flock_file.write_text(yaml.safe_dump([web_flock("web-a", local.base + "/target")]))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {
                    "flush_interval": "1s",
                    "state_dir": "state",
                    "autostart": [flock_file.name],
                    "report": {"webhook_url": hook, "enabled": True, "time": "08:00"},
                    "alerts": [
                        {
                            "name": "availability",
                            "flocks": "web-*",
                            "min_success_pct": 90,
                            "window": "3s",
                            "evaluate_every": "500ms",
                        }
                    ],
                }
            }
        )
    )
    svc = ServiceProcess(
        tmp_path, "--config", str(config), "--auth-file", str(write_auth(tmp_path / "a.yaml"))
    ).wait_ready()
    try:
        with httpx.Client(base_url=svc.url, timeout=60) as c:
            # Healthy: counters, histogram and gauges agree with the flock's own summary.
            wait_for(lambda: local.requests > 20, what="requests reaching the target")
            m = metrics(svc)
            ops = m["bosun_operations"]
            ok = value(ops, "bosun_operations_total", flock="web-a", operation="http_request",
                       result="success")  # fmt: skip
            assert ok > 0
            hist = m["bosun_operation_duration_seconds"]
            count = value(hist, "bosun_operation_duration_seconds_count", flock="web-a",
                          operation="http_request")  # fmt: skip
            inf = value(hist, "bosun_operation_duration_seconds_bucket", flock="web-a",
                        operation="http_request", le="+Inf")  # fmt: skip
            failed = value(ops, "bosun_operations_total", flock="web-a",
                           operation="http_request", result="failure")  # fmt: skip
            assert count == inf == ok + failed
            buckets = [s for s in hist if s.name.endswith("_bucket")
                       and s.labels["operation"] == "http_request"]  # fmt: skip
            assert [b.value for b in buckets] == sorted(b.value for b in buckets)  # cumulative
            assert value(m["bosun_monkeys"], "bosun_monkeys", flock="web-a", state="RUNNING") == 2
            assert value(m["bosun_flock_paused"], "bosun_flock_paused", flock="web-a") == 0
            assert value(m["bosun_flock_successes"], "bosun_flock_successes_total") > 0
            assert value(m["bosun_process_resident_memory_bytes"],
                         "bosun_process_resident_memory_bytes") > 10 << 20  # fmt: skip
            lag = m["bosun_event_loop_lag_seconds"]
            assert 0 <= value(lag, "bosun_event_loop_lag_seconds", stat="max") < 5
            assert value(m["bosun_client_bound"], "bosun_client_bound") in (0, 1)
            time.sleep(1.5)
            assert local.posts == []  # healthy: nothing to say
            assert c.get("/alerts").json()["firing"] == []

            # The platform fails: one alert, however many evaluations see the breach.
            local.status = 500
            (post,) = local.wait_posts(1)
            assert post["path"] == f"/hooks/{SECRET}"
            text = post["json"]["text"]
            assert "Flock *web-a*" in text and "below 90%" in text and "availability" in text
            assert post["json"]["blocks"][0]["text"]["text"] == text
            time.sleep(2.5)  # five more evaluations in breach
            assert len(local.posts) == 1
            alerts = c.get("/alerts").json()
            assert [(f["rule"], f["flock"]) for f in alerts["firing"]] == [
                ("availability", "web-a")
            ]
            assert alerts["history"][0]["kind"] == "firing" and alerts["history"][0]["delivered"]
            firing = metrics(svc)["bosun_alerts_firing"]
            assert value(firing, "bosun_alerts_firing", rule="availability", flock="web-a") == 1
            failures = value(metrics(svc)["bosun_operations"], "bosun_operations_total",
                             flock="web-a", operation="http_request", result="failure")  # fmt: skip
            assert failures > 0

            # It recovers: one recovery message, then quiet again.
            local.status = 200
            posts = local.wait_posts(2)
            assert "recovered" in posts[1]["json"]["text"]
            assert "in breach" in posts[1]["json"]["text"]
            time.sleep(1.5)
            assert len(local.posts) == 2
            alerts = c.get("/alerts").json()
            assert alerts["firing"] == []
            assert [h["kind"] for h in alerts["history"]] == ["recovered", "firing"]
            assert "bosun_alerts_firing" not in {
                s.name for s in metrics(svc).get("bosun_alerts_firing", [])
            }

            # mobu's daily report, paused flock included, posted now on an admin's word.
            assert c.post("/flocks/web-a/pause", headers=bearer("admin")).status_code == 200
            report = c.get("/report").json()
            assert report["text"].startswith("Currently running 1 flock against ")
            assert "• *web-a*: 2 monkeys started " in report["text"]
            assert report["text"].rstrip().endswith(", paused")
            assert report["next_post"].endswith("08:00:00+00:00")
            assert c.post("/report").status_code in (401, 403)  # anonymous
            assert c.post("/report", headers=bearer("reader")).status_code == 403
            posted = c.post("/report", headers=bearer("admin")).json()
            assert posted["delivered"] is True and posted["why"] == "asked by admin"
            assert local.wait_posts(3)[2]["json"]["text"] == posted["text"]
            assert c.get("/report").json()["history"][0]["text"] == posted["text"]
            paused = metrics(svc)
            assert value(paused["bosun_flock_paused"], "bosun_flock_paused", flock="web-a") == 1
            assert (
                value(paused["bosun_monkeys"], "bosun_monkeys", flock="web-a", state="PAUSED") == 2
            )

            # Windowed summaries from the stored events (flushed every second).
            time.sleep(1.5)
            hour = c.get("/stats", params={"window": "1h"}).json()
            (op,) = [o for o in hour["operations"] if o["operation"] == "http_request"]
            assert op["failures"] > 0 and op["count"] > op["failures"]
            assert 0 < op["success_pct"] < 100 and op["p50_ms"] is not None
            assert hour["flocks"]["web-a"]["count"] >= op["count"]
            since = time.time() + 3600
            later = c.get("/stats", params={"since": str(since)}).json()
            assert later["operations"] == [] and later["events"] == 0
            bad = c.get("/stats", params={"window": "soon"})
            assert bad.status_code == 422 and "window" in bad.json()["detail"][0]["loc"]
            assert c.get("/stats", params={"since": "yesterday"}).status_code == 422
    finally:
        assert svc.stop() == 0
    # The webhook URL is a secret: the log says the alert, not where it went.
    out = svc.output()
    assert "alert firing" in out and SECRET not in out


def test_daily_report_posts_at_its_time(local, tmp_path):
    """The schedule itself: the report's time set to the next whole minute (UTC)."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    at = (now + dt.timedelta(minutes=2 if now.second > 45 else 1)).strftime("%H:%M")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {
                    "state_dir": "state",
                    "autostart": [
                        {
                            "name": "heartbeat",
                            "count": 1,
                            "users": [{"username": "bot-mobu-heartbeat"}],
                            "scopes": [],
                            "business": {"type": "EmptyLoop", "options": {"idle_time": "1s"}},
                        }
                    ],
                    "report": {
                        "webhook_url": f"{local.base}/hooks/{SECRET}",
                        "enabled": True,
                        "time": at,
                    },
                }
            }
        )
    )
    svc = ServiceProcess(tmp_path, "--config", str(config)).wait_ready()
    try:
        next_post = httpx.get(svc.url + "/report").json()["next_post"]
        assert next_post.endswith(f"T{at}:00+00:00")
        (post,) = local.wait_posts(1, timeout=150)
        posted_at = dt.datetime.now(dt.UTC)
        assert posted_at.strftime("%H:%M") == at  # on the minute, not before it
        assert post["json"]["text"].startswith("Currently running 1 flock against ")
        assert "• *heartbeat*: 1 monkey started " in post["json"]["text"]
        time.sleep(3)
        assert len(local.posts) == 1
        report = httpx.get(svc.url + "/report").json()
        assert [(h["why"], h["delivered"]) for h in report["history"]] == [("schedule", True)]
        assert report["next_post"].endswith(f"T{at}:00+00:00")
    finally:
        assert svc.stop() == 0
