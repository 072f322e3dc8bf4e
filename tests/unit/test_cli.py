"""./run_toolbox.py through its real entry point: help, errors, from_config, config show."""

import json

import yaml

from tests.helpers import REPO, error_lines, run_cli

RUN_TOOLBOX = REPO / "run_toolbox.py"


def test_help_lists_groups_with_summaries():
    proc = run_cli(RUN_TOOLBOX, "--help")
    assert proc.returncode == 0
    assert "config " in proc.stdout and "shell " in proc.stdout and "from_config" in proc.stdout
    assert "Shell commands recorded like any toolbox call" in proc.stdout


def test_group_and_command_help_come_from_docstrings():
    proc = run_cli(RUN_TOOLBOX, "shell", "run", "--help")
    assert proc.returncode == 0
    assert "Run a shell command" in proc.stdout and "--timeout" in proc.stdout
    assert "Seconds before the command is stopped" in proc.stdout


def test_command_runs_and_records(tmp_path):
    proc = run_cli(
        RUN_TOOLBOX, "shell", "run", "--cmd", "echo hello", env={"ARTIFACT_DIR": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "000__shell__run" / "result.json").read_text())
    assert result["status"] == "success"


def _assert_one_line_error(proc, *needles, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_input_is_one_line_without_traceback(tmp_path):
    _assert_one_line_error(run_cli(RUN_TOOLBOX, "nope", "x"), "unknown toolbox group 'nope'")
    _assert_one_line_error(run_cli(RUN_TOOLBOX, "shell", "nope"), "No such command 'nope'")
    _assert_one_line_error(run_cli(RUN_TOOLBOX, "shell", "run", "--bogus", "1"), "--bogus")
    _assert_one_line_error(run_cli(RUN_TOOLBOX, "shell", "run"), "--cmd")
    _assert_one_line_error(
        run_cli(RUN_TOOLBOX, "shell", "run", "--cmd", "x", "--timeout", "soon"), "--timeout"
    )


def test_failing_command_exit_code_and_artifacts_kept(tmp_path):
    proc = run_cli(
        RUN_TOOLBOX, "shell", "run", "--cmd", "exit 3", env={"ARTIFACT_DIR": str(tmp_path)}
    )
    _assert_one_line_error(proc, "command failed (exit 3)", code=1)
    assert (tmp_path / "000__shell__run" / "FAILURE").is_file()


def test_config_show_presets_vars_and_explain():
    proc = run_cli(
        RUN_TOOLBOX,
        "config",
        "show",
        "--project",
        "example",
        "--preset",
        "quick",
        "--var",
        'tests.example.greeting: "{{ 7*7 }}"',
    )
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)["tests"]["example"]
    assert shown["greeting"] == "{{ 7*7 }}" and shown["names"] == ["alpha", "beta"]
    proc = run_cli(
        RUN_TOOLBOX,
        "config",
        "show",
        "--project",
        "example",
        "--preset",
        "quick",
        "--explain",
        "tests.example.greeting",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.index("layer: base") < proc.stdout.index("layer: preset:quick")


def test_config_show_errors():
    _assert_one_line_error(
        run_cli(RUN_TOOLBOX, "config", "show", "--project", "nope"),
        "unknown project 'nope'",
        "example",
    )
    _assert_one_line_error(
        run_cli(RUN_TOOLBOX, "config", "show", "--project", "example", "--preset", "nope"),
        "unknown preset 'nope'",
        "quick",
    )
    _assert_one_line_error(
        run_cli(
            RUN_TOOLBOX,
            "config",
            "show",
            "--project",
            "example",
            "--var",
            "tests.example.greting: x",
        ),
        "tests.example.greting",
        "tests.example.greeting",
    )
    _assert_one_line_error(
        run_cli(RUN_TOOLBOX, "config", "show", "--project", "example", "--var", "not yaml: ["),
        "invalid YAML",
    )


def test_from_config_show_args_and_run(tmp_path):
    proc = run_cli(
        RUN_TOOLBOX,
        "from_config",
        "shell",
        "run_argv",
        "--project",
        "example",
        "--suffix",
        "cleanup",
        "--show-args",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "shell run_argv:\n  argv:\n  - echo\n  - cleaning up\n"
    proc = run_cli(
        RUN_TOOLBOX,
        "from_config",
        "shell",
        "run_argv",
        "--project",
        "example",
        "--prefix",
        "prepare",
        "--preset",
        "quick",
        env={"ARTIFACT_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "preparing 2 greetings" in (tmp_path / "000__shell__run_argv" / "run.log").read_text()


def test_from_config_set_at_runtime_and_extra(tmp_path):
    _assert_one_line_error(
        run_cli(
            RUN_TOOLBOX,
            "from_config",
            "shell",
            "run_argv",
            "--project",
            "example",
            "--suffix",
            "greet",
            "--show-args",
        ),
        "'argv' is SET_AT_RUNTIME",
    )
    proc = run_cli(
        RUN_TOOLBOX,
        "from_config",
        "shell",
        "run_argv",
        "--project",
        "example",
        "--suffix",
        "greet",
        "--extra",
        "{argv: [echo, x]}",
        "--show-args",
    )
    assert proc.returncode == 0 and "- echo" in proc.stdout
    _assert_one_line_error(
        run_cli(RUN_TOOLBOX, "from_config", "shell", "nope", "--project", "example"),
        "no entry 'shell nope'",
    )
