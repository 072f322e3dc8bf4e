"""The bad-input catalogue: every bad input gets one clear line, a non-zero exit, no traceback,
and the artifacts written before it stay as they were.

Each case runs a real entry point (./run_toolbox.py or ci/run) in a subprocess, in an
ARTIFACT_DIR that already holds the output of an earlier command.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLBOX = str(REPO / "run_toolbox.py")
CI_RUN = str(REPO / "ci" / "run")

GOOD_CONFIG = """\
tests:
  count: 3
  name: x
ci_presets:
  light: {tests.count: 1}
  loop_a: {extends: [loop_b]}
  loop_b: {extends: [loop_a]}
  typo: {tests.cuont: 2}
  wrong_extends: {extends: light}
  listy: [1, 2]
"""
TEMPLATE = """\
shell run:
  cmd: echo {{ tests.name }}
shell run/missing:
  cmd: echo {{ tests.nope }}
shell run/runtime:
  cmd: SET_AT_RUNTIME
"""
NOTEBOOK = json.dumps(
    {
        "cells": [
            {
                "cell_type": "code",
                "source": "print(1)",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
)


def flock(**overrides) -> str:
    body = {
        "name": "f1",
        "count": 1,
        "users": [{"username": "bot-user1"}],
        "scopes": [],
        "business": {"type": "EmptyLoop"},
    }
    body.update(overrides)
    return json.dumps([{k: v for k, v in body.items() if v is not None}])


@dataclass
class Case:
    id: str
    argv: list[str]
    needles: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    code: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    sandbox: bool = False


def tb(*args: str) -> list[str]:
    return [TOOLBOX, *args]


CFG = ["--config", "{tmp}/config.yaml"]
CASES = [
    # -- YAML files
    Case(
        "yaml-tab",
        tb("config", "show", *CFG),
        ["config.yaml:2:1", "invalid YAML"],
        {"config.yaml": "tests:\n\tcount: 1\n"},
    ),
    Case(
        "yaml-duplicate-key",
        tb("config", "show", *CFG),
        ["config.yaml:3:3", "duplicate key 'count'"],
        {"config.yaml": "tests:\n  count: 1\n  count: 2\n"},
    ),
    Case(
        "yaml-unclosed",
        tb("config", "show", *CFG),
        ["config.yaml", "invalid YAML"],
        {"config.yaml": "tests: [1, 2\n"},
    ),
    Case(
        "yaml-top-level-list",
        tb("config", "show", *CFG),
        ["config.yaml", "must be a YAML mapping"],
        {"config.yaml": "- 1\n- 2\n"},
    ),
    Case(
        "config-missing-file",
        tb("config", "show", "--config", "{tmp}/nope.yaml"),
        ["nope.yaml: no such file"],
    ),
    Case("config-is-directory", tb("config", "show", "--config", "{tmp}"), ["is a directory"]),
    Case(
        "config-not-utf8",
        tb("config", "show", *CFG),
        ["config.yaml", "not a UTF-8"],
        {"config.yaml": b"tests:\n  a: \xff\xfe\n"},
    ),
    Case(
        "ci-presets-not-mapping",
        tb("config", "show", *CFG, "--preset", "x"),
        ["'ci_presets' must be a mapping"],
        {"config.yaml": "tests: {a: 1}\nci_presets: [x]\n"},
    ),
    # -- projects, presets, keys
    Case(
        "unknown-project",
        tb("config", "show", "--project", "nope"),
        ["unknown project 'nope'", "example"],
    ),
    Case(
        "project-and-config",
        tb("config", "show", "--project", "example", *CFG),
        ["exactly one of --project NAME or --config FILE"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "unknown-preset",
        tb("config", "show", *CFG, "--preset", "heavy"),
        ["unknown preset 'heavy'", "light"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "preset-cycle",
        tb("config", "show", *CFG, "--preset", "loop_a"),
        ["loop_a -> loop_b -> loop_a"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "preset-unknown-key",
        tb("config", "show", *CFG, "--preset", "typo"),
        ["preset 'typo'", "'tests.cuont'", "'tests.count'"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "preset-extends-not-list",
        tb("config", "show", *CFG, "--preset", "wrong_extends"),
        ["'extends' must be a list"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "preset-not-mapping",
        tb("config", "show", *CFG, "--preset", "listy"),
        ["preset 'listy'", "mapping"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "var-unknown-key",
        tb("config", "show", *CFG, "--var", "tests.conut: 1"),
        ["'tests.conut'", "'tests.count'"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "var-not-yaml",
        tb("config", "show", *CFG, "--var", "tests.count: [1"),
        ["--var", "invalid YAML"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "var-not-mapping",
        tb("config", "show", *CFG, "--var", "tests.count"),
        ["expected 'dotted.key: value'"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "explain-unknown-key",
        tb("config", "show", *CFG, "--explain", "tests.nme"),
        ["'tests.nme'", "tests.name"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "schema-violation",
        tb("config", "show", *CFG, "--var", "tests.count: many"),
        ["config key tests.count", "'many' is not of type 'integer'"],
        {
            "config.yaml": GOOD_CONFIG,
            "config.schema.json": json.dumps(
                {"properties": {"tests": {"properties": {"count": {"type": "integer"}}}}}
            ),
        },
    ),
    # -- command_args templates and from_config
    Case(
        "template-undefined",
        tb("from_config", "shell", "run", *CFG, "--suffix", "missing"),
        ["command_args.yaml.j2:4", "tests.nope"],
        {"config.yaml": GOOD_CONFIG, "command_args.yaml.j2": TEMPLATE},
    ),
    Case(
        "template-syntax",
        tb("from_config", "shell", "run", *CFG),
        ["command_args.yaml.j2:2", "syntax error"],
        {"config.yaml": GOOD_CONFIG, "command_args.yaml.j2": "shell run:\n  cmd: {{ tests.name \n"},
    ),
    Case(
        "set-at-runtime",
        tb("from_config", "shell", "run", *CFG, "--suffix", "runtime"),
        ["'cmd' is SET_AT_RUNTIME"],
        {
            "config.yaml": GOOD_CONFIG,
            "command_args.yaml.j2": "shell run/runtime:\n  cmd: SET_AT_RUNTIME\n",
        },
    ),
    Case(
        "from-config-unknown-entry",
        tb("from_config", "shell", "wait", *CFG),
        ["no entry 'shell wait'", "'shell run'"],
        {
            "config.yaml": GOOD_CONFIG,
            "command_args.yaml.j2": "shell run:\n  cmd: echo {{ tests.name }}\n",
        },
    ),
    Case(
        "from-config-no-template",
        tb("from_config", "shell", "run", *CFG),
        ["command_args.yaml.j2: no such file"],
        {"config.yaml": GOOD_CONFIG},
    ),
    Case(
        "extra-not-mapping",
        tb("from_config", "shell", "run", *CFG, "--extra", "[1]"),
        ["--extra", "mapping"],
        {"config.yaml": GOOD_CONFIG, "command_args.yaml.j2": "shell run:\n  cmd: echo\n"},
    ),
    # -- toolbox groups, commands, arguments
    Case("unknown-group", tb("shel", "run"), ["unknown toolbox group 'shel'", "shell"]),
    Case("unknown-command", tb("shell", "runn"), ["No such command 'runn'"]),
    Case(
        "unknown-option",
        tb("shell", "run", "--cmd", "true", "--colour", "red"),
        ["No such option: --colour"],
    ),
    Case("missing-option", tb("shell", "run"), ["Missing option '--cmd'"]),
    Case(
        "wrong-type-float",
        tb("shell", "run", "--cmd", "true", "--timeout", "soon"),
        ["--timeout", "valid number"],
    ),
    Case(
        "wrong-type-int",
        tb("tap", "run_query_set", "--count", "many"),
        ["--count", "valid integer"],
    ),
    Case(
        "wrong-choice",
        tb("notebook", "run", "{tmp}/nb.ipynb", "--where", "cloud"),
        ["--where", "cloud"],
        {"nb.ipynb": NOTEBOOK},
    ),
    Case(
        "shell-command-fails",
        tb("shell", "run", "--cmd", "exit 3"),
        ["command failed (exit 3)"],
        code=1,
    ),
    Case(
        "suffix-control-characters",
        tb("from_config", "shell", "run", *CFG, "--suffix", "x\ntouch {tmp}/pwned"),
        ["--suffix", "control characters"],
        {"config.yaml": GOOD_CONFIG, "command_args.yaml.j2": TEMPLATE},
    ),
    # -- limits: refused up front, naming the flag and the estimate
    Case(
        "limit-monkeys-per-process",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml", "--duration", "1s"),
        ["1,000,000 monkeys", "limit of 100,000", "GB", "--count", "--workers"],
        {
            "f.yaml": flock(
                count=1_000_000,
                users=None,
                user_spec={"username_prefix": "bot-many"},
                scopes=[],
            )
        },
    ),
    Case(
        "limit-workers-beyond-cores",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml", "--workers", "64"),
        ["--workers 64", "CPU core", "GB"],
        {"f.yaml": flock(scopes=[])},
    ),
    Case(
        "flock-nan-duration",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "idle_time", "finite"],
        {
            "f.yaml": flock(
                scopes=[], business={"type": "EmptyLoop", "options": {"idle_time": "nan"}}
            )
        },
    ),
    Case(
        "flock-infinite-duration",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "idle_time", "finite"],
        {
            "f.yaml": "- {name: f1, count: 1, users: [{username: bot-user1}], scopes: [],"
            " business: {type: EmptyLoop, options: {idle_time: .inf}}}\n"
        },
    ),
    Case(
        "scale-infinite-duration-arg",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml", "--duration", "inf"),
        ["--duration", "finite"],
        {"f.yaml": flock(scopes=[])},
    ),
    Case(
        "limit-tap-queries",
        tb("tap", "run_query_set", "--count", "100000000", "--service", "http://127.0.0.1:9/tap"),
        ["--count 100000000", "limit of 1,000,000", "GB"],
    ),
    Case(
        "limit-tap-concurrency",
        tb(
            "tap", "run_query_set", "--concurrency", "100000", "--service", "http://127.0.0.1:9/tap"
        ),
        ["--concurrency 100000", "at most 512"],
    ),
    Case(
        "query-set-objects-count",
        tb(
            "tap", "run_query_set", "--query-set", "{tmp}/qs", "--service", "http://127.0.0.1:9/tap"
        ),
        ["params.yaml", "objects_count", "10,000", "300000000"],
        {
            "qs/params.yaml": "object_ids: [1, 2]\nobjects_count: 300000000\n",
            "qs/q.sql": "SELECT 1",
        },
    ),
    # -- failures exit 1, bad input 2 (the same everywhere)
    Case(
        "failed-notebook-exits-1",
        tb("notebook", "run", "{tmp}/fails.ipynb"),
        ["fails.ipynb", "ZeroDivisionError"],
        {"fails.ipynb": NOTEBOOK.replace("print(1)", "1 / 0")},
        code=1,
    ),
    Case(
        "dirty-notebook-exits-1",
        tb("notebook", "check_clean", "{tmp}/dirty.ipynb"),
        ["not clean"],
        {"dirty.ipynb": NOTEBOOK.replace('"execution_count": null', '"execution_count": 3')},
        code=1,
    ),
    Case(
        "failed-flock-exits-1",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml", "--duration", "1s"),
        ["h1", "below 95%"],
        {
            "f.yaml": flock(
                name="h1",
                scopes=[],
                business={
                    "type": "HTTPLoop",
                    "options": {"url": "http://127.0.0.1:9/x", "idle_time": "100ms"},
                },
            )
        },
        code=1,
    ),
    Case(
        "tap-unreachable-exits-1",
        tb("tap", "query", "--service", "http://127.0.0.1:9/tap", "--adql", "SELECT 1"),
        ["127.0.0.1:9"],
        code=1,
    ),
    # -- ci/run
    Case("ci-unknown-step", [CI_RUN, "example", "deploy"], ["unknown step 'deploy'"]),
    Case("ci-missing-step", [CI_RUN, "example"], ["required: step"]),
    Case(
        "ci-trigger-unknown-directive",
        [CI_RUN, "example", "ci", "--trigger-file", "{tmp}/t.txt"],
        ["t.txt:2: unknown directive '/tset'"],
        {"t.txt": "hello\n/tset job example\n"},
    ),
    Case(
        "ci-trigger-var-not-yaml",
        [CI_RUN, "example", "ci"],
        ["$BOSUN_TRIGGER:1", "invalid YAML"],
        env={"BOSUN_TRIGGER": "/var tests.example.names: [a"},
    ),
    Case(
        "ci-trigger-other-project",
        [CI_RUN, "example", "ci"],
        ["names project 'rsp_checks'"],
        env={"BOSUN_TRIGGER": "/test job rsp_checks"},
    ),
    Case(
        "ci-trigger-bad-only",
        [CI_RUN, "example", "ci"],
        ["/only takes one of"],
        env={"BOSUN_TRIGGER": "/only everything"},
    ),
    Case(
        "ci-trigger-file-missing",
        [CI_RUN, "example", "ci", "--trigger-file", "{tmp}/none.txt"],
        ["--trigger-file", "none.txt"],
    ),
    # -- flock files
    Case(
        "flock-not-yaml",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f.yaml:2:1", "invalid YAML"],
        {"f.yaml": "- name: [x\n"},
    ),
    Case(
        "flock-users-and-spec",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "user_spec"],
        {"f.yaml": flock(user_spec={"username_prefix": "bot-x"})},
    ),
    Case(
        "flock-count-mismatch",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "count"],
        {"f.yaml": flock(count=3)},
    ),
    Case(
        "flock-username-prefix",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "bot-"],
        {"f.yaml": flock(users=[{"username": "alice"}])},
    ),
    Case(
        "flock-unknown-business",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "FullLoop", "EmptyLoop"],
        {"f.yaml": flock(business={"type": "FullLoop"})},
    ),
    Case(
        "flock-unknown-option",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "EmptyLoop", "colour"],
        {"f.yaml": flock(business={"type": "EmptyLoop", "options": {"colour": "red"}})},
    ),
    Case(
        "flock-bad-duration",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "soon"],
        {"f.yaml": flock(business={"type": "EmptyLoop", "options": {"idle_time": "soon"}})},
    ),
    Case(
        "flock-missing-scopes",  # mobu requires scopes (an unknown flock key it ignores)
        tb("scale", "run", "--flocks", "{tmp}/f.yaml"),
        ["f1", "scopes: Field required"],
        {"f.yaml": flock(scopes=None, colour="red")},
    ),
    Case("flock-missing-file", tb("scale", "run", "--flocks", "{tmp}/none.yaml"), ["none.yaml"]),
    Case(
        "scale-bad-duration-arg",
        tb("scale", "run", "--flocks", "{tmp}/f.yaml", "--duration", "forever"),
        ["forever"],
        {"f.yaml": flock()},
    ),
    # -- notebooks
    Case(
        "notebook-not-json",
        tb("notebook", "run", "{tmp}/bad.ipynb"),
        ["bad.ipynb:1:3", "invalid JSON"],
        {"bad.ipynb": "{ not json"},
    ),
    Case("notebook-missing", tb("notebook", "run", "{tmp}/none.ipynb"), ["none.ipynb"]),
    Case(
        "notebook-bad-parameter",
        tb("notebook", "run", "{tmp}/nb.ipynb", "--parameters", "novalue"),
        ["novalue"],
        {"nb.ipynb": NOTEBOOK},
    ),
    Case(
        "check-clean-not-json",
        tb("notebook", "check_clean", "{tmp}/bad.ipynb"),
        ["bad.ipynb", "not a notebook"],
        {"bad.ipynb": "[]"},
    ),
    Case("repo-missing-path", tb("notebook", "run_repo", "{tmp}/no-such-dir"), ["no-such-dir"]),
    Case("repo-bad-git-url", tb("notebook", "run_repo", "file://{tmp}/nope.git"), ["nope.git"]),
    # -- TAP
    Case(
        "tap-unknown-query-set",
        tb("tap", "run_query_set", "--query-set", "nope", "--service", "http://127.0.0.1:9/tap"),
        ["nope"],
    ),
    Case(
        "tap-unreachable",
        tb("tap", "query", "--service", "http://127.0.0.1:9/tap", "--adql", "SELECT 1"),
        ["127.0.0.1:9"],
    ),
    Case(
        "tap-bad-adql",
        tb("tap", "query", "--adql", "SELEKT nothing FROM nowhere"),
        ["SELEKT"],
        sandbox=True,
    ),
    Case(
        "tap-unknown-table",
        tb("tap", "query", "--adql", "SELECT TOP 1 * FROM sandbox.nope"),
        ["nope"],
        sandbox=True,
    ),
    Case(
        "tap-delete-jobs-of-another-service",
        tb(
            "tap",
            "delete_jobs",
            "--jobs-file",
            "{tmp}/jobs.txt",
            "--service",
            "http://127.0.0.1:9/tap",
        ),
        ["jobs.txt", "http://example.org/x", "not a job of http://127.0.0.1:9/tap"],
        {"jobs.txt": "http://127.0.0.1:9/tap/async/1\nhttp://example.org/x\n"},
    ),
    # -- hub
    Case(
        "hub-unreachable",
        tb(
            "nublado",
            "lab_status",
            "--user",
            "bot-x",
            "--hub-url",
            "http://127.0.0.1:9",
            "--token-file",
            "{tmp}/token",
        ),
        ["127.0.0.1:9"],
        {"token": "0123456789abcdef\n"},
    ),
    Case(
        "hub-invalid-token",
        tb("nublado", "lab_status", "--user", "bot-x", "--token-file", "{tmp}/token"),
        ["403"],
        {"token": "0123456789abcdef0123456789abcdef\n"},
        sandbox=True,
    ),
    Case(
        "hub-token-file-missing",
        tb("nublado", "lab_status", "--user", "bot-x", "--token-file", "{tmp}/none"),
        ["none"],
    ),
    # -- where artifacts go
    Case(
        "artifact-dir-not-a-dir",
        tb("shell", "run", "--cmd", "true"),
        ["ARTIFACT_DIR", "Not a directory"],
        files={"file": "x"},
        env={"ARTIFACT_DIR": "{tmp}/file/sub"},
    ),
]


def _write_files(tmp: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _earlier_artifacts(art: Path) -> dict[str, str]:
    earlier = art / "000__shell__run"
    earlier.mkdir(parents=True)
    (earlier / "result.json").write_text('{"status": "success"}\n')
    (earlier / "log.txt").write_text("an earlier command's log\n")
    return _snapshot(art)


def run_case(case: Case, tmp: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    _write_files(tmp, case.files)
    art = tmp / "artifacts"
    before = _earlier_artifacts(art)
    env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art), **extra_env}
    env.update({k: v.format(tmp=tmp) for k, v in case.env.items()})
    env.pop("BOSUN_DEBUG", None)
    argv = [a.format(tmp=tmp) for a in case.argv]
    proc = subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{case.id}: exit 0\n{output}"
    if case.code is not None:
        assert proc.returncode == case.code, f"{case.id}: exit {proc.returncode}\n{output}"
    assert "Traceback" not in output, f"{case.id}: traceback shown\n{output}"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"{case.id}: expected one error line\n{proc.stderr}"
    for needle in case.needles:
        assert needle in errors[0], f"{case.id}: {needle!r} not in {errors[0]!r}"
    after = _snapshot(art) if art.is_dir() else {}
    assert all(after.get(k) == v for k, v in before.items()), (
        f"{case.id}: earlier artifacts changed"
    )
    return proc


@pytest.mark.parametrize("case", [c for c in CASES if not c.sandbox], ids=lambda c: c.id)
def test_bad_input(case, tmp_path):
    run_case(case, tmp_path, {})


@pytest.mark.integration
@pytest.mark.parametrize("case", [c for c in CASES if c.sandbox], ids=lambda c: c.id)
def test_bad_input_against_the_sandbox(case, tmp_path, sandbox):
    extra = {"BOSUN_HUB_URL": sandbox.hub_url, "BOSUN_TOKEN_FILE": str(sandbox.token_file)}
    if sandbox.tap_url:
        extra["BOSUN_TAP_URL"] = sandbox.tap_url
    run_case(case, tmp_path, extra)


def test_full_disk_keeps_what_was_written(tmp_path):
    """A tiny tmpfs fills up mid-command: one line, exit 1, earlier files intact."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]).returncode
        != 0
    ):
        pytest.fail("mounting a tmpfs needs root (the suite runs as root on its CI machines)")
    try:
        case = Case(
            "full-disk",
            tb("shell", "run", "--cmd", "head -c 300000 /dev/zero | tr '\\0' x"),
            ["No space left on device", "ARTIFACT_DIR"],
            code=1,
        )
        run_case(case, mount, {})
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_disk_filling_during_ci_run_keeps_the_last_cleanup_and_the_records(tmp_path):
    """The disk fills during the test step: the step fails in one line, the last cleanup is
    attempted, and junit.xml, exit_code and run.json are written (from the room the run set
    aside at its start); exit 1, no traceback."""
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]).returncode
        != 0
    ):
        pytest.fail("mounting a tmpfs needs root (the suite runs as root on its CI machines)")
    try:
        art = mount / "art"
        env = {
            **os.environ,
            "CI": "true",
            "ARTIFACT_DIR": str(art),
            # Every greeting logs its 8 kB command line and prints it: the disk fills.
            "BOSUN_TRIGGER": "/var tests.example.greeting: " + "x" * 8_000,
        }
        env.pop("BOSUN_DEBUG", None)
        proc = subprocess.run(
            [
                sys.executable,
                CI_RUN,
                "example",
                "ci",
                "--preset",
                "sequential",
                "--var",
                f"tests.example.names: [{', '.join(f'n{i}' for i in range(30))}]",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert (art / "exit_code").read_text() == "1\n"
        suite = ET.parse(art / "junit.xml").getroot()
        assert int(suite.get("failures")) >= 1
        info = json.loads((art / "run.json").read_text())
        assert [r["name"] for r in info["step_results"]] == [
            "cleanup",
            "prepare",
            "test",
            "cleanup",
        ]
        test_step = info["step_results"][2]
        assert test_step["status"] == "failure" and "No space left" in test_step["error"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _ci_run(art: Path, *args: str, trigger: str | None = None, wait: bool = True):
    env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art)}
    env.pop("BOSUN_TRIGGER", None)
    if trigger:
        env["BOSUN_TRIGGER"] = trigger
    popen = subprocess.Popen(
        [sys.executable, CI_RUN, "example", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if not wait:
        return popen
    out, err = popen.communicate(timeout=180)
    return subprocess.CompletedProcess(popen.args, popen.returncode, out, err)


def test_a_rerun_into_the_same_dir_does_not_replay_the_first_runs_overrides(tmp_path):
    art = tmp_path / "art"
    first = _ci_run(art, "test", trigger="/var tests.example.fail_on: beta")
    assert first.returncode == 1, first.stderr
    assert "fail_on: beta" in (art / "overrides_applied.yaml").read_text()
    assert not (art / "variable_overrides.yaml").exists()  # CI input, never written by bosun
    second = _ci_run(art, "test")
    assert second.returncode == 0, second.stdout + second.stderr
    provenance = (art / "config_provenance.yaml").read_text()
    assert "var:" not in provenance
    # The input file stays the CI system's: applied, and left as it was.
    (art / "variable_overrides.yaml").write_text("tests.example.greeting: salut\n")
    third = _ci_run(art, "test")
    assert third.returncode == 0, third.stderr
    assert "tests.example.greeting: var:file" in (art / "config_provenance.yaml").read_text()
    assert (art / "variable_overrides.yaml").read_text() == "tests.example.greeting: salut\n"


def test_a_second_ci_run_into_a_busy_dir_is_refused_in_one_line(tmp_path):
    art = tmp_path / "art"
    owner = _ci_run(
        art, "ci", "--preset", "sequential", "--var", "tests.example.pause: 3", wait=False
    )
    try:
        deadline = time.monotonic() + 60
        while not (art / "001__prepare").exists():
            assert owner.poll() is None and time.monotonic() < deadline, owner.communicate()
            time.sleep(0.1)
        second = _ci_run(art, "ci", trigger="/var tests.example.fail_on: alpha")
        assert second.returncode == 2
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            f"error: ARTIFACT_DIR {art}: another ci/run (pid {owner.pid}) is writing there; "
            "wait for it to end or set ARTIFACT_DIR to a directory of this run's own"
        ]
        out, err = owner.communicate(timeout=180)
    finally:
        if owner.poll() is None:
            owner.kill()
    assert owner.returncode == 0, out + err
    assert (art / "exit_code").read_text() == "0\n"
    assert "fail_on" not in (art / "overrides_applied.yaml").read_text()
    steps = sorted(p.name for p in art.iterdir() if p.is_dir() and p.name[0].isdigit())
    assert steps == ["000__cleanup", "001__prepare", "002__test", "003__cleanup"]


def test_read_only_artifact_dir(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)]
        ).returncode
        != 0
    ):
        pytest.fail("mounting a tmpfs needs root (the suite runs as root on its CI machines)")
    try:
        env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(mount / "art")}
        proc = subprocess.run(
            [sys.executable, TOOLBOX, "shell", "run", "--cmd", "true"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
            f"error: ARTIFACT_DIR {mount / 'art'}: cannot create it (Read-only file system); "
            "set ARTIFACT_DIR to a writable directory"
        ]
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize(
    "trigger",
    [
        "/var tests.cleanup.message: $(touch {marker})",
        "/var tests.cleanup.message: '`touch {marker}`; touch {marker}'",
        "/var tests.example.greeting: $(touch {marker})",
        "/var tests.example.greeting: \"'; touch {marker}; echo '\"",
    ],
    ids=["dollar-paren", "backticks", "greeting", "quotes"],
)
def test_trigger_values_never_become_shell(tmp_path, trigger):
    """A /var value of the example project (the skeleton projects copy) reaches programs as
    data: it is printed, never run."""
    marker = tmp_path / "pwned"
    art = tmp_path / "art"
    env = {
        **os.environ,
        "CI": "true",
        "ARTIFACT_DIR": str(art),
        "BOSUN_TRIGGER": trigger.format(marker=marker),
    }
    proc = subprocess.run(
        [sys.executable, CI_RUN, "example", "ci", "--var", "tests.example.names: [alpha]"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists(), "a trigger value ran as a shell command"
    logs = "".join(p.read_text() for p in art.rglob("run.log"))
    assert f"touch {marker}" in logs


SECRET = "s3cretValue0123"


@pytest.mark.parametrize(
    "argv",
    [
        tb("tap", "query", "--service", f"http://user:{SECRET}@127.0.0.1:9/tap", "--adql", "x"),
        tb(
            "tap",
            "query",
            "--service",
            f"http://127.0.0.1:9/tap?access_token={SECRET}",
            "--adql",
            "x",
        ),
        tb("shell", "run", "--cmd", f"curl -sf http://bot:{SECRET}@127.0.0.1:9/ # fails"),
        tb(
            "shell",
            "run",
            "--cmd",
            f"curl -sf -H 'Authorization: Bearer {SECRET}' http://127.0.0.1:9/",
        ),
    ],
    ids=["url-password", "token-parameter", "url-in-shell-command", "header-in-shell-command"],
)
def test_a_secret_inside_a_value_reaches_no_file_and_no_console(tmp_path, argv):
    """Secrets that nobody registered, carried by a URL or a header in an argument: masked in
    the error line, log.txt, args.yaml, command.sh, result.json, FAILURE and run.log."""
    art = tmp_path / "artifacts"
    env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art)}
    env.pop("BOSUN_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    written = sorted(p.name for p in art.rglob("*") if p.is_file())
    assert {"args.yaml", "command.sh", "log.txt", "result.json", "FAILURE"} <= set(written)
    hits = [str(p) for p in art.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert hits == []
    assert SECRET not in proc.stdout + proc.stderr


def test_catalogue_is_large_enough():
    assert len(CASES) + 2 >= 40
