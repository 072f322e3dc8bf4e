"""Summary from the artifacts: figures, mobu's report lines, JUnit, webhook, live status line."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from library import redact
from library.events import Recorder
from library.flock.health import HealthSampler, client_bound
from library.flock.models import parse_flocks
from library.flock.summary import build_summary, junit_xml, post_webhook, write_summary

START = 1_795_219_200.0  # 2026-11-21T00:00:00Z


def _flocks():
    return parse_flocks(
        [
            {
                "name": "tap",
                "count": 20,
                "user_spec": {"username_prefix": "bot-t"},
                "scopes": [],
                "business": {"type": "TAPQuerySetRunner"},
            },
            {
                "name": "empty",
                "count": 2,
                "user_spec": {"username_prefix": "bot-e"},
                "scopes": [],
                "business": {"type": "EmptyLoop"},
            },
        ]
    )


def _events(out_dir):
    rec = Recorder(out_dir / "events")
    t = int(START * 1e6)
    for i in range(489):
        rec.record(
            "tap_query",
            t + i,
            1000 * (i % 100 + 1),
            True,
            f"bot-t{i % 20 + 1:02d}",
            "cone",
            rows=10,
            flock="tap",
            business="TAPQuerySetRunner",
        )
    for _ in range(3):
        rec.record(
            "tap_query",
            t,
            5000,
            False,
            "bot-t01",
            "cone",
            "TapTimeout",
            "slow",
            flock="tap",
            business="TAPQuerySetRunner",
        )
        rec.record(
            "monkey_error",
            t,
            0,
            False,
            "bot-t01",
            "",
            "TapTimeout",
            "slow",
            flock="tap",
            business="TAPQuerySetRunner",
        )
    rec.close()


def test_summary_figures_and_report_lines(tmp_path):
    _events(tmp_path)
    summary = build_summary(tmp_path, _flocks(), START, START + 60, {"stop_reason": "duration"})
    tap = summary["flocks"]["tap"]
    assert (tap["monkeys"], tap["started"], tap["successes"], tap["failures"]) == (20, 20, 489, 3)
    assert tap["success_pct"] == 99.39
    query = tap["operations"]["tap_query"]
    assert query["count"] == 492 and query["failures"] == 3
    assert 45 <= query["p50_ms"] <= 55 and query["max_ms"] == 100.0
    assert summary["flocks"]["empty"]["started"] == 0
    assert summary["start"] == "2026-11-21T00:00:00+00:00" and summary["duration_s"] == 60
    text = write_summary(tmp_path, summary, 95)
    assert text.splitlines()[0] == (
        "• *tap*: 20 monkeys started 2026-11-21 with 3 failures (99.39% success)"
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == {"kind": "scale_run", **summary}
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert (junit.get("tests"), junit.get("failures")) == ("2", "1")  # `empty` did nothing
    tap_case, empty_case = junit.iter("testcase")
    assert tap_case.get("name") == "tap" and float(tap_case.get("time")) == 60.0
    assert tap_case.find("failure") is None and empty_case.find("failure") is not None


def test_a_flock_below_the_threshold_fails_its_testcase(tmp_path):
    _events(tmp_path)
    summary = build_summary(tmp_path, _flocks()[:1], START, START + 1)
    assert 'failures="1"' in junit_xml(summary, 99.5)
    assert "99.39% success is below 99.5% (3 failures)" in junit_xml(summary, 99.5)


def test_webhook_posts_slack_json_and_survives_a_dead_endpoint(tmp_path):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with redact.isolated_registry():
            url = f"http://127.0.0.1:{server.server_port}/services/T000/B000/secretpart"
            post_webhook(url, "• *tap*: 1 monkeys started")
            assert "secretpart" not in redact.redact_text(url)
    finally:
        server.shutdown()
        server.server_close()
    assert received == [("application/json", {"text": "• *tap*: 1 monkeys started"})]
    post_webhook(f"http://127.0.0.1:{server.server_port}/gone", "x", timeout=1)  # logged only


def test_client_bound_needs_more_than_a_blip(tmp_path):
    sampler = HealthSampler(lambda: 3, shard=0)
    sampler.rows = [(i, 5.0, 4.0, 20.0, 1, 3, 0) for i in range(30)]
    sampler.rows[5] = (5, 400.0, 300.0, 20.0, 1, 3, 0)
    sampler.write(tmp_path)
    assert client_bound(tmp_path) == (False, None)
    for i in range(6, 12):
        sampler.rows[i] = (i, 10.0, 5.0, 99.0, 1, 3, 0)
    sampler.write(tmp_path)
    bound, reason = client_bound(tmp_path)
    assert bound and reason == "process CPU at or above 90% in 6 of 30 s"
