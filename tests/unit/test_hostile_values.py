"""Values from outside (config, triggers, /var, --suffix) stay data: never shell text, never a
line of command.sh, never a path out of the artifact dir."""

import json
import shlex
import subprocess

import pytest

from library import run, toolbox
from library.errors import UserError


def test_run_with_a_list_passes_each_value_as_one_argument(artifact_dir, tmp_path):
    marker = tmp_path / "pwned"
    value = f"$(touch {marker}); touch {marker} `touch {marker}` \"'"
    proc = run.run(["echo", value], capture_stdout=True)
    assert proc.stdout == value + "\n"
    assert not marker.exists()
    assert "$ echo " in (artifact_dir / "run.log").read_text()


def test_run_with_a_list_fails_in_one_line(artifact_dir):
    with pytest.raises(run.CommandFailed, match=r"command failed \(exit 4\): sh -c 'exit 4'"):
        run.run(["sh", "-c", "exit 4"])
    with pytest.raises(run.CommandFailed, match="command not found: 'no-such-program-x'"):
        run.run(["no-such-program-x"])
    with pytest.raises(UserError, match="NUL"):
        run.run(["echo", "a\0b"])


def test_shell_run_argv_keeps_values_as_data(artifact_dir, tmp_path):
    marker = tmp_path / "pwned"
    toolbox.invoke("shell", "run_argv", {"argv": ["echo", f"$(touch {marker})"]})
    assert not marker.exists()
    assert f"$(touch {marker})" in (artifact_dir / "000__shell__run_argv" / "run.log").read_text()


@pytest.mark.parametrize("suffix", ["x\ntouch /tmp/bosun-pwned", "x\rid", "a\0b", "tab\there"])
def test_suffix_with_control_characters_is_refused(artifact_dir, suffix):
    with pytest.raises(UserError, match="--suffix .*control characters"):
        toolbox.invoke("shell", "run", {"cmd": "true"}, suffix=suffix)
    assert list(artifact_dir.iterdir()) == []


def test_command_sh_is_one_command_whatever_the_arguments(artifact_dir, tmp_path):
    """Every argument is quoted and the suffix comment cannot start a line of its own."""
    marker = tmp_path / "pwned"
    hostile = f"x\ntouch {marker}\n$(touch {marker})"
    toolbox.invoke("shell", "run_argv", {"argv": ["true", hostile]}, suffix="a;b #c")
    script = next(artifact_dir.glob("000__*")) / "command.sh"
    body = script.read_text()
    assert json.dumps("a;b #c") in body
    # bash parses the file as one command line (the cd, then the replay) and nothing else.
    parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    words = shlex.split(body, comments=True)
    assert words[2:] == [
        "&&",
        "./run_toolbox.py",
        "shell",
        "run_argv",
        "--argv",
        "true",
        "--argv",
        hostile,
    ]
    assert not marker.exists()
