"""ci/run through its real entry point: steps, presets, trigger text, JUnit, signals."""

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from library import ci
from library.errors import UserError
from tests.helpers import REPO, error_lines, run_cli

CI_RUN = REPO / "ci" / "run"


def test_parse_trigger():
    trigger = ci.parse_trigger(
        "please run\n/test e2e example quick sequential\n/var tests.a: [1, 2]\n"
        "/var tests.b: '{{ x }}'\n/only test\n/skip cleanup\n"
    )
    assert (trigger.job, trigger.project, trigger.presets) == (
        "e2e",
        "example",
        ["quick", "sequential"],
    )
    assert trigger.variables == {"tests.a": [1, 2], "tests.b": "{{ x }}"}
    assert (trigger.only, trigger.skip) == (["test"], ["cleanup"])
    with pytest.raises(UserError, match=r"trigger:1: unknown directive '/tset'"):
        ci.parse_trigger("/tset x y")
    with pytest.raises(UserError, match=r"trigger:2: /var 'nope'"):
        ci.parse_trigger("\n/var nope")


def test_ci_sequence_passes_and_writes_the_run_files(tmp_path):
    proc = run_cli(
        CI_RUN, "example", "ci", "--preset", "quick", env={"ARTIFACT_DIR": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    for expected in (
        "000__cleanup",
        "001__prepare",
        "002__test",
        "003__cleanup",
        "FINISHED",
        "config.yaml",
        "config_provenance.yaml",
        "exit_code",
        "junit.xml",
        "presets_applied",
        "run.json",
        "overrides_applied.yaml",
    ):
        assert expected in names
    assert "FAILURES" not in names
    assert "variable_overrides.yaml" not in names  # CI input: bosun never writes it
    assert (tmp_path / "exit_code").read_text() == "0\n"
    assert (tmp_path / "presets_applied").read_text() == "two_names\nquick\n"
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    assert int(suite.get("tests")) == 4 + 5  # 4 steps, 5 toolbox calls (2 greetings)


def test_a_short_secret_override_reaches_no_record(tmp_path):
    """A `!secret` value too short to register is masked by its marker in run.json (by source,
    as config.yaml) and in the toolbox call that received it (args.yaml, command.sh)."""
    proc = run_cli(
        CI_RUN,
        "example",
        "cleanup",
        "--var",
        "tests.cleanup.message: !secret Zq9",
        env={"ARTIFACT_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    call = tmp_path / "000__cleanup" / "000__shell__run_argv__cleanup"
    for path in (tmp_path / "run.json", call / "args.yaml", call / "command.sh"):
        assert "Zq9" not in path.read_text(), path.name
    run_info = json.loads((tmp_path / "run.json").read_text())
    assert run_info["overrides"] == {"tests.cleanup.message": "***"}


def test_failure_is_reported_and_cleanup_still_runs(tmp_path):
    trigger = tmp_path / "trigger.txt"
    trigger.write_text("/test job example\n/var tests.example.fail_on: gamma\n")
    art = tmp_path / "art"
    proc = run_cli(
        CI_RUN, "example", "ci", "--trigger-file", trigger, env={"ARTIFACT_DIR": str(art)}
    )
    assert proc.returncode == 1
    assert (art / "003__cleanup" / "000__shell__run_argv__cleanup" / "result.json").is_file()
    failures = (art / "FAILURES").read_text()
    assert "exit 3" in failures and "=== 002__test/" in failures
    suite = ET.parse(art / "junit.xml").getroot()
    assert suite.get("failures") == "2"  # the test step and the one toolbox call
    assert (art / "exit_code").read_text() == "1\n"


def test_only_and_skip_from_environment_trigger(tmp_path):
    proc = run_cli(
        CI_RUN,
        "example",
        "ci",
        env={
            "ARTIFACT_DIR": str(tmp_path),
            "BOSUN_TRIGGER": "/skip cleanup\n/var tests.example.names: [x]",
        },
    )
    assert proc.returncode == 0, proc.stderr
    steps = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert steps == ["000__prepare", "001__test"]


def test_bad_input_is_one_line(tmp_path):
    cases = [
        ((CI_RUN, "nope", "ci"), "unknown project 'nope'"),
        ((CI_RUN, "example", "deploy"), "unknown step 'deploy'"),
        ((CI_RUN, "example", "ci", "--preset", "nope"), "unknown preset 'nope'"),
        ((CI_RUN, "example", "ci", "--var", "tests.nope: 1"), "tests.nope"),
        ((CI_RUN, "example"), "ci/run: the following arguments are required: step"),
    ]
    for args, needle in cases:
        proc = run_cli(*args, env={"ARTIFACT_DIR": str(tmp_path / "a")})
        assert proc.returncode == 2, (args, proc.stderr)
        lines = error_lines(proc.stderr)
        assert len(lines) == 1 and needle in lines[0], (args, proc.stderr)
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_runs_last_cleanup(tmp_path, signum):
    art = tmp_path / "art"
    env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CI_RUN),
            "example",
            "ci",
            "--preset",
            "sequential",
            "--var",
            "tests.example.pause: 30",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline and not (art / "002__test").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, out + err
    assert (art / "FINISHED").is_file() and (art / "junit.xml").is_file()
    assert (art / "003__cleanup" / "000__shell__run_argv__cleanup" / "result.json").is_file()
    assert "interrupted" in (art / "run.json").read_text()
