"""The scale_friday campaign through ci/run against the sandbox: every flock, one Parallel block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_friday_campaign_sized_for_the_sandbox(sandbox, tmp_path):
    env = dict(os.environ, ARTIFACT_DIR=str(tmp_path), CI="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "ci" / "run"),
            "scale_friday",
            "test",
            "--preset",
            "friday",
            "--preset",
            "sandbox",
            "--var",
            "tests.scale.duration: 15s",
            "--var",
            "tests.scale.flocks.emptyloop.count: 50",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    runs = sorted(tmp_path.glob("*__test/*__scale_campaign/*__scale__run__*"))
    assert sorted(p.name.split("__")[-1] for p in runs) == ["emptyloop", "http", "nublado", "tap"]
    counts = {"emptyloop": 50, "nublado": 3, "tap": 5, "http": 200}
    for path in runs:
        name = path.name.split("__")[-1]
        summary = json.loads((path / "summary.json").read_text())
        flock = summary["flocks"][name]
        assert flock["monkeys"] == counts[name], name
        assert flock["failures"] == 0 and flock["successes"] > 0, (name, flock, output)
        assert list((path / "events").glob("*.parquet"))
    assert "test: " in output
    presets = (tmp_path / "presets_applied").read_text().split()
    assert presets[-2:] == ["friday", "sandbox"]
