"""Config semantics: presets, extends ordering, overrides, provenance, atomic failure."""

import pytest

from library import config, yamlio
from library.errors import ConfigError, UserError

BASE = """
tests:
  tap:
    count: 10
    query_set: sandbox
    options: {sync: true, timeout: 30}
  scale:
    users: [1, 2, 3]
    flocks: [{name: a, count: 1}, {name: b, count: 2}]
  placeholder: null
secrets:
  hub_token: !secret s3cr3t-token-value
ci_presets:
  base: {tests.tap.count: 5, tests.tap.query_set: base}
  extends_first: {extends: [base], tests.tap.count: 7}
  extends_last: {tests.tap.count: 7, extends: [base]}
  chain: {extends: [extends_first], tests.tap.query_set: chain}
  cycle_a: {extends: [cycle_b]}
  cycle_b: {extends: [cycle_c]}
  cycle_c: {extends: [cycle_a]}
  typo: {tests.tap.count: 1, tests.tap.cuont: 2}
  bad_extends: {extends: base}
  subtree: {tests.tap.options: {sync: false}}
  list_value: {tests.scale.users: [10, 20]}
  fill: {tests.placeholder: {a: 1}}
  not_a_map: [1, 2]
  index: {tests.scale.flocks.1.count: 9}
"""


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(BASE)
    return path


def load(path, *presets, overrides=()):
    return config.load(config_file=path, presets=list(presets), overrides=list(overrides))


def test_get_config_dotted_and_list_index(cfg_file):
    cfg = load(cfg_file)
    assert cfg.get_config("tests.tap.count") == 10
    assert cfg.get_config("tests.scale.users.1") == 2
    assert cfg.get_config("tests.scale.flocks.1.name") == "b"


def test_get_config_returns_a_copy(cfg_file):
    cfg = load(cfg_file)
    cfg.get_config("tests.scale.users").append(99)
    assert cfg.get_config("tests.scale.users") == [1, 2, 3]


def test_get_config_missing_key_names_nearest(cfg_file):
    cfg = load(cfg_file)
    with pytest.raises(ConfigError, match=r"'tests.tap.cuont' does not exist.*'tests.tap.count'"):
        cfg.get_config("tests.tap.cuont")
    assert cfg.get_config("tests.tap.cuont", None) is None
    assert cfg.get_config("nope.at.all", 42) == 42


def test_extends_first_lets_the_preset_win(cfg_file):
    cfg = load(cfg_file, "extends_first")
    assert cfg.get_config("tests.tap.count") == 7
    assert cfg.get_config("tests.tap.query_set") == "base"
    assert cfg.presets_applied == ["base", "extends_first"]


def test_extends_last_lets_the_parent_win(cfg_file):
    cfg = load(cfg_file, "extends_last")
    assert cfg.get_config("tests.tap.count") == 5
    assert cfg.presets_applied == ["extends_last", "base"]


def test_nested_extends_and_later_preset_wins(cfg_file):
    cfg = load(cfg_file, "chain")
    assert cfg.get_config("tests.tap.query_set") == "chain"
    assert cfg.get_config("tests.tap.count") == 7
    cfg = load(cfg_file, "extends_first", "base")
    assert cfg.get_config("tests.tap.count") == 5


def test_dict_value_replaces_the_subtree(cfg_file):
    cfg = load(cfg_file, "subtree")
    assert cfg.get_config("tests.tap.options") == {"sync": False}
    assert "tests.tap.options.timeout" not in cfg.provenance()


def test_list_value_replaces_the_list_and_placeholder_takes_a_dict(cfg_file):
    cfg = load(cfg_file, "list_value", "fill")
    assert cfg.get_config("tests.scale.users") == [10, 20]
    assert cfg.get_config("tests.placeholder.a") == 1


def test_list_index_key_in_preset(cfg_file):
    assert load(cfg_file, "index").get_config("tests.scale.flocks.1.count") == 9


def test_cycle_is_named(cfg_file):
    with pytest.raises(ConfigError, match=r"cycle_a -> cycle_b -> cycle_c -> cycle_a"):
        load(cfg_file, "cycle_a")


def test_unknown_preset_lists_available(cfg_file):
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'.*available: bad_extends, base"):
        load(cfg_file, "nope")


def test_unknown_key_names_preset_key_and_nearest(cfg_file):
    with pytest.raises(ConfigError) as err:
        load(cfg_file, "typo")
    message = str(err.value)
    assert "preset 'typo'" in message and "'tests.tap.cuont'" in message
    assert "nearest existing key: 'tests.tap.count'" in message


def test_failing_preset_changes_nothing(cfg_file):
    cfg = load(cfg_file)
    with pytest.raises(ConfigError):
        cfg.apply_presets(["base", "typo"])
    assert cfg.get_config("tests.tap.count") == 10
    assert cfg.get_config("tests.tap.query_set") == "sandbox"
    assert cfg.presets_applied == []


def test_extends_must_be_a_list_of_names(cfg_file):
    with pytest.raises(ConfigError, match=r"'extends' must be a list of preset names"):
        load(cfg_file, "bad_extends")


def test_preset_must_be_a_mapping(cfg_file):
    with pytest.raises(ConfigError, match=r"preset 'not_a_map'.*must be a mapping"):
        load(cfg_file, "not_a_map")


def test_overrides_after_presets_and_never_rendered(cfg_file):
    cfg = load(
        cfg_file,
        "base",
        overrides=[
            ("trigger", config.parse_var('tests.tap.query_set: "{{ 7*7 }}"')),
            ("cli", {"tests.tap.count": 3}),
        ],
    )
    assert cfg.get_config("tests.tap.query_set") == "{{ 7*7 }}"
    assert cfg.get_config("tests.tap.count") == 3
    assert cfg.provenance()["tests.tap.count"] == "var:cli"
    assert cfg.provenance()["tests.tap.query_set"] == "var:trigger"


def test_override_file_applies_last(cfg_file, tmp_path):
    overrides = tmp_path / "variable_overrides.yaml"
    overrides.write_text("tests.tap.count: 99\n")
    cfg = config.load(
        config_file=cfg_file,
        presets=["base"],
        overrides=[("cli", {"tests.tap.count": 3})],
        overrides_file=overrides,
    )
    assert cfg.get_config("tests.tap.count") == 99
    assert [layer for layer, _, _ in cfg.explain("tests.tap.count")] == [
        "base",
        "preset:base",
        "var:cli",
        "var:file",
    ]


def test_override_of_unknown_key_is_refused(cfg_file):
    with pytest.raises(ConfigError, match=r"override \(cli\): key 'tests.tap.conut'"):
        load(cfg_file, overrides=[("cli", {"tests.tap.conut": 1})])


def test_parse_var_requires_a_mapping():
    assert config.parse_var("a.b: [1, 2]") == {"a.b": [1, 2]}
    with pytest.raises(ConfigError, match=r"expected 'dotted.key: value'"):
        config.parse_var("just words")
    with pytest.raises(UserError, match=r"invalid YAML"):
        config.parse_var("a: [1, 2")


def test_set_config_refuses_unknown_keys_and_presets(cfg_file):
    cfg = load(cfg_file)
    cfg.set_config("tests.tap.count", 11)
    assert cfg.get_config("tests.tap.count") == 11
    with pytest.raises(ConfigError, match="nearest existing key: 'tests.tap.count'"):
        cfg.set_config("tests.tap.cont", 1)
    with pytest.raises(ConfigError, match="presets are not settable"):
        cfg.set_config("ci_presets.base", {})


def test_set_config_refused_while_frozen(cfg_file):
    cfg = load(cfg_file)
    with (
        config.frozen("spawn_labs"),
        pytest.raises(ConfigError, match="inside the Parallel block 'spawn_labs'"),
    ):
        cfg.set_config("tests.tap.count", 1)
    cfg.set_config("tests.tap.count", 1)


def test_provenance_and_explain(cfg_file):
    cfg = load(cfg_file, "extends_first")
    assert cfg.provenance()["tests.tap.count"] == "preset:extends_first"
    assert cfg.provenance()["tests.tap.query_set"] == "preset:base"
    assert cfg.explain("tests.tap.count") == [
        ("base", "tests.tap.count", 10),
        ("preset:base", "tests.tap.count", 5),
        ("preset:extends_first", "tests.tap.count", 7),
    ]
    assert not any(key.startswith("ci_presets") for key in cfg.provenance())


def test_snapshot_files_are_written_and_redacted(cfg_file, tmp_path):
    cfg = load(cfg_file, "extends_first", overrides=[("cli", {"tests.tap.count": 4})])
    out = tmp_path / "snap"
    cfg.write_snapshot(out)
    assert (out / "presets_applied").read_text() == "base\nextends_first\n"
    assert yamlio.load_file(out / "overrides_applied.yaml") == {"tests.tap.count": 4}
    assert not (out / "variable_overrides.yaml").exists()  # CI input, never written
    assert yamlio.load_file(out / "config_provenance.yaml")["tests.tap.count"] == "var:cli"
    text = (out / "config.yaml").read_text()
    assert "s3cr3t-token-value" not in text and "hub_token: '***'" in text


def test_yaml_errors_name_file_line_and_column(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("tests:\n  a: 1\n  a: 2\n")
    with pytest.raises(UserError) as err:
        config.load(config_file=bad)
    assert f"{bad}:3:3: invalid YAML: duplicate key 'a'" in str(err.value)
    bad.write_text("tests:\n\t- 1\n")
    with pytest.raises(UserError, match=rf"{bad}:2:1: invalid YAML"):
        config.load(config_file=bad)


def test_unknown_project_lists_projects():
    with pytest.raises(ConfigError, match=r"unknown project 'nope'.*available: .*example"):
        config.load("nope")


def test_schema_validation_names_the_key(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "tests: {count: 3}\nci_presets: {bad: {tests.count: x}}\n"
    )
    (tmp_path / "config.schema.json").write_text(
        '{"type": "object", "properties": {"tests": {"type": "object", "properties":'
        ' {"count": {"type": "integer"}}}}}'
    )
    config.load(config_file=tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=r"config key tests.count: 'x' is not of type 'integer'"):
        config.load(config_file=tmp_path / "config.yaml", presets=["bad"])


def test_current_project_proxy(cfg_file):
    cfg = load(cfg_file)
    with pytest.raises(ConfigError, match="no project config is loaded"):
        config.current()
    with config.using(cfg):
        assert config.project.get_config("tests.tap.count") == 10
