"""Signals to ci/run while a Parallel block runs: the first stops the run after the running
tasks, a second never pulls the launcher out of the wait for their records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_keeps_every_parallel_tasks_records(tmp_path, signum):
    art = tmp_path / "art"
    env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "ci" / "run"),
            "example",
            "ci",
            "--var",
            "tests.example.pause: 3",
            "--var",
            "tests.example.names: [a, b, c]",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    block = art / "002__test" / "000__greetings"
    deadline = time.monotonic() + 60
    while len(list(block.glob("*__shell__run_argv__greet"))) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signum)
    time.sleep(0.5)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, out + err
    assert "Traceback" not in out + err
    root_junit = art / "junit.xml"
    calls = sorted(block.glob("*__shell__run_argv__greet"))
    assert len(calls) == 3
    for call in calls:
        result = json.loads((call / "result.json").read_text())
        assert result["status"] == "success", result
        # Written before the root JUnit that lists them, never after it.
        assert (call / "result.json").stat().st_mtime <= root_junit.stat().st_mtime
    names = [c.get("name") for c in ET.parse(root_junit).getroot().iter("testcase")]
    for call in calls:
        assert str(call.relative_to(art)) in names, names
    info = json.loads((art / "run.json").read_text())
    steps = [(s["name"], s["status"]) for s in info["step_results"]]
    # The test step is interrupted, the last cleanup still runs.
    assert steps == [
        ("cleanup", "success"),
        ("prepare", "success"),
        ("test", "failure"),
        ("cleanup", "success"),
    ], steps
    assert info["step_results"][2]["error"] == f"interrupted by {signal.Signals(signum).name}"
