"""command_args.yaml.j2: StrictUndefined, prefix/suffix lookup, extra, SET_AT_RUNTIME."""

import pytest

from library import command_args
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
