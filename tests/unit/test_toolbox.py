"""Toolbox invocation: artifact files, argument checks and coercion, redaction, docstrings."""

import json

import pytest

from library import redact, toolbox
from library.errors import UserError


def test_invoke_writes_the_artifact_contract(artifact_dir):
    toolbox.invoke("shell", "run", {"cmd": "echo hi"})
    d = artifact_dir / "000__shell__run"
    for name in ("args.yaml", "command.sh", "log.txt", "exit_code", "result.json", "run.log"):
        assert (d / name).is_file(), name
    result = json.loads((d / "result.json").read_text())
    assert result["status"] == "success" and result["error"] is None and result["duration_s"] >= 0
    assert (d / "exit_code").read_text() == "0\n"
    assert "./run_toolbox.py shell run --cmd 'echo hi'\n" in (d / "command.sh").read_text()
    assert "shell run: finished" in (d / "log.txt").read_text()


def test_failure_writes_failure_and_exit_code(artifact_dir):
    with pytest.raises(UserError):
        toolbox.invoke("shell", "run", {"cmd": "exit 7"})
    d = artifact_dir / "000__shell__run"
    assert (d / "exit_code").read_text() == "1\n"
    assert "Traceback" in (d / "FAILURE").read_text()
    assert json.loads((d / "result.json").read_text())["status"] == "failure"


def test_unknown_and_missing_arguments(artifact_dir):
    with pytest.raises(
        UserError, match=r"shell run: unknown argument 'cmdd' \(arguments: cmd, check, timeout\)"
    ):
        toolbox.invoke("shell", "run", {"cmdd": "x"})
    with pytest.raises(UserError, match=r"shell run: missing required argument 'cmd'"):
        toolbox.invoke("shell", "run", {})
    with pytest.raises(UserError, match=r"argument 'timeout': expected float, got 'soon'"):
        toolbox.invoke("shell", "run", {"cmd": "true", "timeout": "soon"})
    assert list(artifact_dir.iterdir()) == []  # nothing recorded for a call that never ran


def test_unknown_group_and_command():
    with pytest.raises(UserError, match=r"unknown toolbox group 'nope' \(available: .*shell"):
        toolbox.invoke("nope", "x")
    with pytest.raises(
        UserError,
        match=r"unknown command 'nope' in toolbox group 'shell' \(available: run, run_argv, wait\)",
    ):
        toolbox.invoke("shell", "nope")


def test_coercion_rules():
    from pathlib import Path
    from typing import Literal

    assert toolbox._coerce("3", int, "w") == 3
    assert toolbox._coerce(2, float, "w") == 2.0
    assert toolbox._coerce("x", Path, "w") == Path("x")
    assert toolbox._coerce("a", list[str], "w") == ["a"]
    assert toolbox._coerce(None, int | None, "w") is None
    assert toolbox._coerce("yes", bool, "w") is True
    with pytest.raises(UserError, match="expected one of local, lab"):
        toolbox._coerce("cloud", Literal["local", "lab"], "w")
    with pytest.raises(UserError, match="expected int"):
        toolbox._coerce(True, int, "w")


def test_secret_arguments_are_masked(artifact_dir):
    secret = "tok-" + "9" * 20
    with redact.isolated_registry():
        redact.register_secret(secret)
        toolbox.invoke("shell", "run", {"cmd": f"echo {secret}"})
    for path in (artifact_dir / "000__shell__run").iterdir():
        assert secret not in path.read_text(), path.name


def test_a_short_secret_file_value_reaches_no_record(artifact_dir, tmp_path, monkeypatch):
    """A secret file's content is too short to register for masking by value; its Secret
    marker still masks it in args.yaml, command.sh and result.json."""
    from library import config

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db_password").write_text("Zq9\n")
    monkeypatch.setenv("BOSUN_TEST_SECRET_PATH", str(tmp_path / "secrets"))
    path = tmp_path / "config.yaml"
    path.write_text(
        "secrets: {dir: {env_key: BOSUN_TEST_SECRET_PATH}, db: db_password}\n"
        "db: {password: '*$@secrets.db'}\n"
    )
    with redact.isolated_registry():
        value = config.load(config_file=path).get_config("db.password", handled_secretly=True)
        assert value == "Zq9"
        toolbox.invoke("shell", "run_argv", {"argv": ["true", value]})
    for record in (artifact_dir / "000__shell__run_argv").iterdir():
        if record.name in ("args.yaml", "command.sh", "result.json"):
            assert "Zq9" not in record.read_text(), record.name


def test_docstring_parsing():
    def f(user: str, count: int = 1):
        """Do a thing.

        Longer words
        on two lines.

        Args:
            user: The user
                continued here.
            count: How many.
        """

    doc = toolbox.parse_docstring(f)
    assert doc.summary == "Do a thing."
    assert doc.description == "Longer words\non two lines."
    assert doc.args == {"user": "The user continued here.", "count": "How many."}


def test_every_command_has_a_documented_signature():
    for group in toolbox.group_names():
        assert toolbox.group_summary(group), f"toolbox/{group}.py has no docstring summary"
        for name, fn in toolbox.load_group(group).items():
            doc = toolbox.parse_docstring(fn)
            assert doc.summary, f"{group} {name} has no summary"
            import inspect

            undocumented = set(inspect.signature(fn).parameters) - set(doc.args)
            assert not undocumented, f"{group} {name}: undocumented arguments {undocumented}"
