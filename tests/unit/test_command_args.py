"""command_args.yaml.j2: StrictUndefined, prefix/suffix lookup, extra, SET_AT_RUNTIME."""

import pytest

from library import command_args
from library.config import Secret
from library.errors import ConfigError

TEMPLATE = """\
tap run_query_set:
  count: {{ tests.tap.count }}
  query_set: {{ tests.tap.query_set }}
  _note: metadata, not an argument

sutest/cluster set_scale:
  scale: SET_AT_RUNTIME
  name: sutest

driver/cluster set_scale:
  scale: 1
  name: driver

nublado spawn_lab/big:
  size: large
"""

DATA = {"tests": {"tap": {"count": 3, "query_set": "sandbox"}}}


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "command_args.yaml.j2"
    path.write_text(TEMPLATE)
    return path


def test_render_and_metadata_dropped(template):
    args = command_args.resolve(template, DATA, "tap", "run_query_set")
    assert args == {"count": 3, "query_set": "sandbox"}


def test_extra_wins(template):
    args = command_args.resolve(
        template, DATA, "tap", "run_query_set", extra={"count": 9, "seed": 1}
    )
    assert args == {"count": 9, "query_set": "sandbox", "seed": 1}


def test_prefix_and_suffix_lookup(template):
    assert (
        command_args.resolve(template, DATA, "cluster", "set_scale", prefix="driver")["name"]
        == "driver"
    )
    assert command_args.resolve(template, DATA, "nublado", "spawn_lab", suffix="big") == {
        "size": "large"
    }


def test_set_at_runtime_must_be_supplied(template):
    with pytest.raises(
        ConfigError, match=r"'sutest/cluster set_scale' argument 'scale' is SET_AT_RUNTIME"
    ):
        command_args.resolve(template, DATA, "cluster", "set_scale", prefix="sutest")
    args = command_args.resolve(
        template, DATA, "cluster", "set_scale", prefix="sutest", extra={"scale": 4}
    )
    assert args["scale"] == 4


def test_unknown_entry_lists_available(template):
    with pytest.raises(
        ConfigError, match=r"no entry 'tap query' \(available: 'tap run_query_set', "
    ):
        command_args.resolve(template, DATA, "tap", "query")


def test_strict_undefined_names_line_and_name(template):
    with pytest.raises(ConfigError) as err:
        command_args.resolve(template, {"tests": {"tap": {"count": 1}}}, "tap", "run_query_set")
    message = str(err.value)
    assert f"{template}:3: missing config value" in message
    assert "query_set" in message


def test_template_syntax_error_names_line(tmp_path):
    path = tmp_path / "command_args.yaml.j2"
    path.write_text("a b:\n  x: {{ tests.tap.count \n")
    with pytest.raises(ConfigError, match=rf"{path}:2: template syntax error"):
        command_args.render(path, DATA)


# -- a rendered value stays one value


@pytest.mark.parametrize(
    "value",
    [
        'x"\n  check: false',
        "x\n  check: false",
        "a: b",
        "'quoted'",
        "[1, 2]",
        "{check: false}",
        "&anchor x",
        "*alias",
        "x # comment",
        "- item",
        "|\n  block",
    ],
)
def test_a_value_cannot_add_arguments(tmp_path, value):
    path = tmp_path / "command_args.yaml.j2"
    path.write_text(
        'tests run:\n  name: {{ tests.name }}\n  quoted: "{{ tests.name }}"\n'
        "  inside: pre-{{ tests.name }}-post\n  check: true\n"
    )
    args = command_args.resolve(path, {"tests": {"name": value}}, "tests", "run")
    assert args == {
        "name": value,
        "quoted": value,
        "inside": f"pre-{value}-post",
        "check": True,
    }


def test_a_secret_stays_secret_whole_quoted_or_inside_a_string(tmp_path):
    """A config Secret keeps its marker through the template, so args.yaml masks it."""
    path = tmp_path / "command_args.yaml.j2"
    path.write_text(
        'a b:\n  whole: {{ s }}\n  quoted: "{{ s }}"\n  inside: [x, "k={{ s }}"]\n  n: {{ n }}\n'
    )
    args = command_args.resolve(path, {"s": Secret("Zq9"), "n": 3}, "a", "b")
    assert args == {"whole": "Zq9", "quoted": "Zq9", "inside": ["x", "k=Zq9"], "n": 3}
    assert all(isinstance(v, Secret) for v in (args["whole"], args["quoted"], args["inside"][1]))
    assert not isinstance(args["inside"][0], Secret)


def test_values_keep_their_yaml_types(tmp_path):
    path = tmp_path / "command_args.yaml.j2"
    path.write_text(
        "a b:\n  n: {{ n }}\n  s: {{ s }}\n  l: {{ l }}\n  d: {{ d }}\n  none: {{ none }}\n"
        "  joined: {{ n }}{{ n }}\n  quoted: '{{ n }}'\n  flag: {{ flag }}\n  empty: {{ e }}\n"
    )
    data = {"n": 3, "s": "10", "l": ["a", "b"], "d": {"k": 1}, "none": None, "flag": "true"}
    data["e"] = ""
    assert command_args.resolve(path, data, "a", "b") == {
        "n": 3,
        "s": 10,  # TOPSAIL renders text then parses YAML: a "10" string becomes an int
        "l": ["a", "b"],
        "d": {"k": 1},
        "none": None,
        "joined": 33,
        "quoted": "3",
        "flag": True,
        "empty": None,  # an empty string renders as nothing, as in TOPSAIL
    }


# -- TOPSAIL's file name and filters


def test_topsail_file_name_is_found(tmp_path):
    assert command_args.template_path(tmp_path).name == "command_args.yaml.j2"
    (tmp_path / "command_args.yml.j2").write_text("a b: {x: 1}\n")
    assert command_args.template_path(tmp_path).name == "command_args.yml.j2"
    (tmp_path / "command_args.yaml.j2").write_text("a b: {x: 2}\n")
    with pytest.raises(ConfigError, match="both command_args.yaml.j2 and command_args.yml.j2"):
        command_args.template_path(tmp_path)


def test_or_env_filter(tmp_path, monkeypatch):
    path = tmp_path / "command_args.yml.j2"
    path.write_text(
        "{% set location = secrets.dir.name | or_env(secrets.dir.env_key) %}\n"
        "a b:\n  dir: {{ location }}\n"
        "{% if not location %}{{ 'no secrets dir' | raise_exception }}{% endif %}\n"
    )
    data = {"secrets": {"dir": {"name": None, "env_key": "BOSUN_TEST_SECRETS"}}}
    monkeypatch.setenv("BOSUN_TEST_SECRETS", "/run/secrets")
    assert command_args.resolve(path, data, "a", "b") == {"dir": "/run/secrets"}
    data["secrets"]["dir"]["name"] = "named"
    assert command_args.resolve(path, data, "a", "b") == {"dir": "named"}
    data["secrets"]["dir"]["name"] = None
    monkeypatch.delenv("BOSUN_TEST_SECRETS")
    warned = path.with_name("warned.yml.j2")
    warned.write_text("{% if true %}\n  {{ 'careful' | log_warning }}\n{% endif %}\na b: {x: 1}\n")
    assert command_args.resolve(warned, data, "a", "b") == {"x": 1}
    with pytest.raises(ConfigError, match=rf"{path}: no secrets dir"):
        command_args.resolve(path, data, "a", "b")


def test_show_args_of_an_injected_var_is_one_value():
    """The probe of the hostile-input issue: a quote and a newline in --var."""
    from tests.helpers import REPO, run_cli

    proc = run_cli(
        REPO / "run_toolbox.py",
        "from_config",
        "shell",
        "run_argv",
        "--project",
        "example",
        "--suffix",
        "cleanup",
        "--var",
        'tests.cleanup.message: "x\\"]\\n  check: false"',
        "--show-args",
    )
    assert proc.returncode == 0, proc.stderr
    import yaml

    args = yaml.safe_load(proc.stdout)["shell run_argv"]
    assert args == {"argv": ["echo", 'x"]\n  check: false']}


def test_tojson_output_is_read_as_yaml_reads_it(tmp_path):
    # TOPSAIL templates quote values with `tojson`; the quotes are YAML syntax, not the value.
    path = tmp_path / "command_args.yaml.j2"
    path.write_text(
        "a b:\n  s: {{ s | tojson }}\n  none: {{ none | tojson }}\n  l: {{ l | tojson }}\n"
        "  evil: {{ evil | tojson }}\n  inside: pre-{{ s | tojson }}\n"
    )
    data = {"s": "bosun-sandbox", "none": None, "l": ["a", 1], "evil": "x\n  check: false"}
    assert command_args.resolve(path, data, "a", "b") == {
        "s": "bosun-sandbox",
        "none": None,
        "l": ["a", 1],
        "evil": "x\n  check: false",
        "inside": 'pre-"bosun-sandbox"',
    }
