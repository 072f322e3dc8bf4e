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


SCRIPT = """
import os, signal, sys, threading, time
from pathlib import Path

from library import ci, env, run


def main():
    art = Path(sys.argv[1])
    flocks = art / "f.yaml"
    flocks.write_text(
        "- name: e\\n  count: 2\\n  user_spec: {username_prefix: bot-mobue}\\n  scopes: []\\n"
        "  business: {type: EmptyLoop, options: {idle_time: 100ms}}\\n"
    )

    def signal_when_running():
        deadline = time.monotonic() + 60
        while not list(art.glob("*__scale__run/flocks.yaml")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(float(sys.argv[3]))
        os.kill(os.getpid(), int(sys.argv[2]))

    threading.Thread(target=signal_when_running, daemon=True).start()
    with env.using_artifact_dir(art):
        with ci._signals_raise():
            request = run.stop_request()
            try:
                run.run_toolbox(
                    "scale", "run", flocks=flocks, duration="60s", live=False, workers=%(workers)s
                )
                run.run_toolbox("shell", "run", cmd="echo the step went on")
                print("NOT INTERRUPTED", flush=True)
            except BaseException as err:  # Interrupted, or the stopped run's own failure
                print("step ended:", type(err).__name__, "request:", request.reason, flush=True)


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("workers", [None, 1], ids=["in-process", "distributed"])
def test_a_signal_during_a_scale_run_in_the_main_thread_ends_the_step_after_its_records(
    tmp_path, workers
):
    """A scale run called from a step (not in a Parallel block), in process or across Dask
    workers: the signal stops it, its records are written, and the step's next command is not
    run."""
    script = tmp_path / "step.py"
    script.write_text(SCRIPT % {"workers": workers})
    art = tmp_path / "art"
    art.mkdir()
    proc = subprocess.run(
        # In process: 2 s into the run; distributed: while the cluster starts or runs.
        [sys.executable, str(script), str(art), str(int(signal.SIGINT)), "2"],
        cwd=REPO,
        env={**os.environ, "CI": "true", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "request: SIGINT" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "NOT INTERRUPTED" not in proc.stdout
    (scale,) = art.glob("*__scale__run")
    for name in ("result.json", "summary.json", "junit.xml"):
        assert (scale / name).is_file(), name
    assert not list(art.glob("*__shell__run"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_records_are_written_does_not_cut_them(tmp_path, signum):
    """The steps are over and junit.xml is written; a signal while the report is built is logged
    and the run still writes run.json, exit_code and FINISHED."""
    art = tmp_path / "art"
    env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art)}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "ci" / "run"), "example", "test"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (art / "junit.xml").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in out + err
    for name in ("junit.xml", "run.json", "exit_code", "FINISHED"):
        assert (art / name).is_file(), name
    assert (art / "exit_code").read_text() == "0\n"
