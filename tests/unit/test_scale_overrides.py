"""`scale run` flags reach the flocks: --start-batch-size/--start-batch-wait are applied (they
used to be accepted and dropped), and a secret given as a business option never reaches
flocks.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import yaml

from library.events import read_events
from library.flock.runner import ScaleRun

REPO = Path(__file__).resolve().parents[2]
FLOCK = (
    "- name: b\n  count: 4\n  user_spec: {username_prefix: bot-mobub}\n  scopes: []\n"
    "  business: {type: EmptyLoop, options: {idle_time: 50ms}}\n"
)


def test_batch_flags_replace_every_flocks_batching(tmp_path):
    path = tmp_path / "flocks.yaml"
    path.write_text(FLOCK)
    scale = ScaleRun.prepare(path, start_batch_size=2, start_batch_wait="3s")
    assert [(f.start_batch_size, f.start_batch_wait) for f in scale.flocks] == [(2, 3.0)]
    untouched = ScaleRun.prepare(path)
    assert untouched.flocks[0].start_batch_size is None


def test_batch_flags_are_validated_like_the_file(tmp_path):
    import pytest

    from library.errors import UserError

    path = tmp_path / "flocks.yaml"
    path.write_text(FLOCK)
    with pytest.raises(UserError, match="start_batch_size"):
        ScaleRun.prepare(path, start_batch_size=-1)
    with pytest.raises(UserError, match="start_batch_wait"):
        ScaleRun.prepare(path, start_batch_wait="soon")


def test_monkeys_start_in_batches_from_the_command_line(tmp_path):
    path = tmp_path / "flocks.yaml"
    path.write_text(FLOCK)
    env = dict(os.environ, ARTIFACT_DIR=str(tmp_path / "art"), CI="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_toolbox.py"),
            "scale",
            "run",
            "--flocks",
            str(path),
            "--duration",
            "2500ms",
            "--start-batch-size",
            "2",
            "--start-batch-wait",
            "1s",
            "--option",
            "idle_time=50ms",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (out,) = (tmp_path / "art").glob("*__scale__run")
    events = read_events(out / "events")
    starts = sorted(
        events.filter(pc.equal(events["operation"], "monkey_start"))["start_us"].to_pylist()
    )
    assert len(starts) == 4
    # Two batches of two, a second apart (all four at once before the flags were passed on).
    assert starts[1] - starts[0] < 500_000
    assert starts[2] - starts[1] >= 900_000
    written = yaml.safe_load((out / "flocks.yaml").read_text())
    assert written[0]["start_batch_size"] == 2


def test_secrets_given_as_options_reach_no_artifact(tmp_path):
    """A header given with --option, a URL with a password and a token parameter, a webhook
    URL: none of them appears in any file of the run, nor on the console."""
    secret = "hdr0123456789abcdef"
    path = tmp_path / "flocks.yaml"
    path.write_text(
        "- name: h\n  count: 1\n  user_spec: {username_prefix: bot-mobuh}\n  scopes: []\n"
        "  business:\n    type: HTTPLoop\n    options:\n"
        f"      url: 'http://user:{secret}@127.0.0.1:9/x?access_token={secret}'\n"
        "      idle_time: 100ms\n"
    )
    env = dict(os.environ, ARTIFACT_DIR=str(tmp_path / "art"), CI="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_toolbox.py"),
            "scale",
            "run",
            "--flocks",
            str(path),
            "--duration",
            "1s",
            "--option",
            f"headers={{Authorization: 'Bearer {secret}', X-Api-Key: {secret}}}",
            "--webhook-url",
            f"http://127.0.0.1:9/hooks/{secret}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # every request failed: a failure
    (out,) = (tmp_path / "art").glob("*__scale__run")
    assert (out / "flocks.yaml").is_file() and (out / "args.yaml").is_file()
    hits = [
        str(p.relative_to(tmp_path))
        for p in (tmp_path / "art").rglob("*")
        if p.is_file() and secret.encode() in p.read_bytes()
    ]
    assert hits == []
    assert secret not in proc.stdout + proc.stderr


def test_limits_hold_for_a_scale_run_started_from_python(tmp_path):
    """Not only the CLI: a project step or a service calling ScaleRun is held to the limits."""
    import os

    import pytest

    from library.errors import UserError

    path = tmp_path / "flocks.yaml"
    path.write_text(FLOCK.replace("count: 4", "count: 200000"))
    scale = ScaleRun.prepare(path)
    with pytest.raises(UserError, match="200,000 monkeys: 200,000 in one process"):
        scale.execute(tmp_path / "out")
    with pytest.raises(UserError, match=f"--workers {(os.cpu_count() or 1) + 1}: "):
        scale.execute(tmp_path / "out", workers=(os.cpu_count() or 1) + 1)
    assert not (tmp_path / "out").exists()
