"""The one bounded YAML loader, and every reader that must go through it.

Hostile-input classes: alias bombs, deep nesting, non-JSON types (dates, !!binary), duplicate
keys, merge keys, non-UTF-8 bytes. Each refusal is one line naming the file.
"""

import json
import shutil
import time

import pytest

from library import config, yamlio
from library.errors import UserError
from library.tap import query_set
from tests.helpers import REPO, error_lines, run_cli

RUN_TOOLBOX = REPO / "run_toolbox.py"
CI_RUN = REPO / "ci" / "run"


def alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes that expand to 10**levels list items."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def one_line(proc, *needles, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "internal error" not in proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- the loader


def test_alias_bomb_is_refused_quickly():
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"bomb.yaml: invalid YAML: expands to more than"):
        yamlio.loads(alias_bomb(), "bomb.yaml")
    assert time.perf_counter() - start < 5  # refused before building anything


def test_aliases_within_bounds_still_work():
    assert yamlio.loads("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


def test_recursive_alias_is_refused():
    with pytest.raises(UserError, match="recursive alias"):
        yamlio.loads("a: &a [*a]\n", "r.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 950 + "]" * 950,
        "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 950)) + "  " * 950 + "v: 1\n",
    ],
)
def test_deep_nesting_is_one_line(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=rf"{path}:\d+:\d+: invalid YAML: nesting deeper than"):
        yamlio.load_file(path)


def test_dates_stay_strings_and_non_json_tags_are_refused():
    data = yamlio.loads("d: 2024-01-01\nt: 2024-01-01T10:00:00Z\n")
    assert data == {"d": "2024-01-01", "t": "2024-01-01T10:00:00Z"}
    json.dumps(data)  # what run.json needs
    for tag, text in [("binary", "aGVsbG8="), ("timestamp", "2024-01-01"), ("set", "{a}")]:
        with pytest.raises(UserError, match=rf"v.yaml:1:4: invalid YAML: the tag !!{tag} is not"):
            yamlio.loads(f"v: !!{tag} {text}\n", "v.yaml")


def test_duplicate_keys_name_both_lines_and_merge_keys_may_be_overridden():
    with pytest.raises(
        UserError, match=r"f.yaml:3:1: invalid YAML: duplicate key 'a' \(first at line 1\)"
    ):
        yamlio.loads("a: 1\nb: 2\na: 3\n", "f.yaml")
    merged = yamlio.loads("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  x: 3\n")
    assert merged["item"] == {"x": 3, "y": 2}


def test_latin1_file_names_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=rf"{path}: not a UTF-8 text file \(byte 0xe9"):
        yamlio.load_file(path)


# -- the readers


def test_var_values_go_through_the_loader():
    with pytest.raises(UserError, match=r"--var .*: invalid YAML: expands to more than"):
        config.parse_var("x:\n  " + alias_bomb().replace("\n", "\n  "))
    assert config.parse_var("a.b: 2024-01-01") == {"a.b": "2024-01-01"}
    with pytest.raises(UserError, match=r"--var .*the tag !!binary is not accepted"):
        config.parse_var("a.b: !!binary aGVsbG8=")


def test_a_bomb_in_an_unused_preset_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "a: 1\nci_presets:\n  unused:\n"
        + "".join("    " + line + "\n" for line in alias_bomb().splitlines())
    )
    with pytest.raises(UserError, match=rf"{path}: invalid YAML: expands to more than"):
        config.load(config_file=path)


def _query_set_copy(tmp_path):
    target = tmp_path / "qs"
    shutil.copytree(query_set.SHIPPED_DIR / "bosun-sandbox", target)
    return target


def test_query_set_params_bomb_duplicates_and_latin1(tmp_path):
    qs = _query_set_copy(tmp_path)
    params = qs / "params.yaml"
    original = params.read_text()
    params.write_text(original + alias_bomb().replace("a0:", "zz0:"))
    with pytest.raises(UserError, match=rf"{params}: not valid YAML: expands to more than"):
        query_set.QuerySet.load(qs)
    first_key = next(iter(yamlio.loads(original)))
    params.write_text(original + f"{first_key}: 1\n")
    with pytest.raises(
        UserError,
        match=rf"{params}:\d+:1: not valid YAML: duplicate key "
        rf"'{first_key}' \(first at line \d+\)",
    ):
        query_set.QuerySet.load(qs)
    params.write_text(original)
    sql = sorted(qs.glob("*.sql"))[0]
    sql.write_bytes(sql.read_bytes() + "-- caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=rf"{sql.name}: not a UTF-8 text file"):
        query_set.QuerySet.load(qs)


def test_config_show_date_and_binary_vars_through_the_cli():
    proc = run_cli(
        RUN_TOOLBOX,
        "config",
        "show",
        "--project",
        "example",
        "--var",
        "tests.example.greeting: 2024-01-01",
    )
    assert proc.returncode == 0, proc.stderr
    assert "greeting: '2024-01-01'" in proc.stdout
    one_line(
        run_cli(
            RUN_TOOLBOX,
            "config",
            "show",
            "--project",
            "example",
            "--var",
            "tests.example.greeting: !!binary aGVsbG8=",
        ),
        "--var",
        "!!binary",
    )


def test_ci_run_date_var_writes_its_records(tmp_path):
    proc = run_cli(
        CI_RUN,
        "example",
        "cleanup",
        "--var",
        "tests.cleanup.message: 2024-01-01",
        env={"ARTIFACT_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "internal error" not in proc.stderr
    assert (tmp_path / "exit_code").read_text().strip() == "0"


def test_ci_run_latin1_trigger_file_is_one_line(tmp_path):
    trigger = tmp_path / "trigger.txt"
    trigger.write_bytes("/var tests.cleanup.message: caf\xe9\n".encode("latin-1"))
    one_line(
        run_cli(
            CI_RUN,
            "example",
            "cleanup",
            "--trigger-file",
            str(trigger),
            env={"ARTIFACT_DIR": str(tmp_path / "art")},
        ),
        "trigger.txt",
        "not a UTF-8 text file",
    )


def test_ci_run_bomb_in_a_var_line_is_one_line(tmp_path):
    bomb = "{" + ", ".join(alias_bomb().strip().splitlines()) + "}"
    assert "expands to more than" in str(pytest.raises(UserError, yamlio.loads, bomb).value)
    proc = run_cli(
        CI_RUN,
        "example",
        "cleanup",
        env={"ARTIFACT_DIR": str(tmp_path / "a"), "BOSUN_TRIGGER": f"/var tests.x: {bomb}\n"},
    )
    one_line(proc, "/var", "expands to more than")


def test_flock_file_duplicates_latin1_and_depth(tmp_path):
    from library.flock import models

    path = tmp_path / "flocks.yaml"
    path.write_text("- name: a\n  count: 1\n  count: 2\n")
    with pytest.raises(UserError, match=rf"{path}:3:3: invalid YAML: duplicate key 'count'"):
        models.load_flocks(path)
    path.write_bytes("- name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=rf"{path}: not a UTF-8 text file"):
        models.load_flocks(path)
    path.write_text("- " + "[" * 950 + "]" * 950 + "\n")
    with pytest.raises(UserError, match=rf"{path}:1:\d+: invalid YAML: nesting deeper than"):
        models.load_flocks(path)
