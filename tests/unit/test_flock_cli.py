"""`scale run` from the command line: bad input is one line, a good run leaves its artifacts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def scale(tmp_path, *args):
    env = dict(os.environ, ARTIFACT_DIR=str(tmp_path / "artifacts"), CI="1")
    return subprocess.run(
        [sys.executable, str(REPO / "run_toolbox.py"), "scale", "run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("flocks", "args", "message"),
    [
        (
            "- name: x\n  count: 2\n  users: [{username: bot-a}]\n  scopes: []\n"
            "  business: {type: EmptyLoop}\n",
            [],
            "flock 'x': users: has 1 entries, count is 2; mobu needs exactly 2",
        ),
        (
            "- name: x\n  count: 1\n  user_spec: {username_prefix: bot-a}\n"
            "  scopes: []\n  business: {type: EmptyLoop}\n",
            ["--duration", "soon"],
            "--duration: expected a duration like 30, 5s, 5min, 2 hours, 1d or 1h30m, got 'soon'",
        ),
        (
            "- name: x\n  count: 1\n  user_spec: {username_prefix: bot-a}\n"
            "  scopes: []\n  business: {type: EmptyLoop}\n",
            ["--option", "idle_time"],
            "--option 'idle_time': expected NAME=VALUE",
        ),
        (
            "- name: x\n  count: 1\n  user_spec: {username_prefix: bot-a}\n"
            "  scopes: []\n  business: {type: EmptyLoop}\n",
            ["--workers", "2", "--scheduler", "tcp://x:1"],
            "--workers and --scheduler exclude each other",
        ),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, flocks, args, message):
    path = tmp_path / "flocks.yaml"
    path.write_text(flocks)
    result = scale(tmp_path, "--flocks", str(path), *args)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_an_empty_loop_run_leaves_every_artifact(tmp_path):
    path = tmp_path / "flocks.yaml"
    path.write_text(
        "- name: e\n  count: 20\n  user_spec: {username_prefix: bot-e}\n  scopes: []\n"
        "  business: {type: EmptyLoop, options: {idle_time: 100ms}}\n"
    )
    result = scale(tmp_path, "--flocks", str(path), "--duration", "1500ms", "--count", "30")
    assert result.returncode == 0, result.stderr
    (out,) = (tmp_path / "artifacts").glob("*__scale__run")
    for name in ("flocks.yaml", "summary.json", "summary.txt", "junit.xml", "result.json"):
        assert (out / name).is_file(), name
    assert list((out / "events").glob("part-*.parquet"))
    assert list((out / "health").glob("*.parquet"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flocks"]["e"]["monkeys"] == 30  # --count applied
    assert summary["stop_reason"] == "duration"
    # CI mode: plain status lines, the last one after the stop.
    assert re.search(
        r"e: 0 running/0 idle/0 error, \d+ ok, 0 failed \(100.00%\), [\d.]+ ops/s,"
        r" empty_loop p50 [\d.]+ ms p95 [\d.]+ ms[^|]* \| loop lag \d+ ms",
        result.stderr + result.stdout,
    )
    result_json = json.loads((out / "result.json").read_text())
    assert result_json["status"] == "success"
    assert result_json["result"]["flocks"]["e"]["started"] == 30
