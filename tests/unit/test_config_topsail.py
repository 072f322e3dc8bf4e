"""TOPSAIL config semantics in bosun, one test per difference found moving TOPSAIL projects.

The configs are small ones written in the shape of openshift-psap/topsail's
``projects/*/testing/config.yaml`` (mac_ai, crc-timing, llm-d, notebooks).
"""

import pytest

from library import config, redact, yamlio
from library.errors import ConfigError, UserError

TOPSAIL_SHAPED = """
ci_presets:
  to_apply: []
  variable_overrides: {}
  names: []
  name: null
  local_config: null

  light:
    tests.x.gpu: 0
    tests.x.name: light
  edits_light:
    'ci_presets.light["tests.x.gpu"]': 1
    extends: [light]
  remoting:
    prepare.remoting_env.ggml_libs[1]: "/usr/bin/libggml-cuda.so"
  remoting_quoted:
    'prepare["remoting_env"].ggml_libs[0]': first.so
  mac5:
    secrets.hostname: mac_ai__hostname.mac5

tests:
  x:
    gpu: 4
    name: base
    max_input_tokens: 2047
    min_input_tokens: 0
  1: numbered

prepare:
  namespace:
    name: llm-d-project
  remoting_env:
    ggml_libs: [libggml-base.so, libggml-metal.so]
  binary:
    version: 2.54.0
    base_url: https://example.org/crc/{@prepare.binary.version}
    file: crc-{@prepare.binary.version}-{@prepare.namespace.name}.pkg
  uses_namespace: "@prepare.namespace.name"
  indirect: "@prepare.uses_namespace"
  list_of_refs:
  - "@prepare.namespace.name"

secrets:
  dir:
    name: crc-mac-ai-secret
    env_key: BOSUN_TEST_SECRET_PATH
  hostname: mac_ai__hostname.mac-m4
  private_key_path: mac_ai__private_key

remote_host:
  private_key_filename: "@secrets.private_key_path"
  hostname: "*$@secrets.hostname"
"""


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(TOPSAIL_SHAPED)
    return path


@pytest.fixture
def secrets_dir(tmp_path, monkeypatch):
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "mac_ai__hostname.mac-m4").write_text("m4.internal.example\n")
    (directory / "mac_ai__hostname.mac5").write_text("mac5.internal.example\n")
    monkeypatch.setenv("BOSUN_TEST_SECRET_PATH", str(directory))
    return directory


def load(path, *presets, overrides=()):
    return config.load(config_file=path, presets=list(presets), overrides=list(overrides))


# -- key syntax


def test_jsonpath_list_index_and_quoted_keys(cfg_file):
    cfg = load(cfg_file)
    assert cfg.get_config("prepare.remoting_env.ggml_libs[1]") == "libggml-metal.so"
    assert cfg.get_config("prepare.remoting_env.ggml_libs.1") == "libggml-metal.so"
    assert cfg.get_config('prepare["remoting_env"].ggml_libs[0]') == "libggml-base.so"
    assert cfg.get_config('ci_presets.light["tests.x.gpu"]') == 0
    assert cfg.get_config("$.tests.x.gpu") == 4


def test_preset_sets_a_list_item_with_jsonpath(cfg_file):
    cfg = load(cfg_file, "remoting")
    assert cfg.get_config("prepare.remoting_env.ggml_libs") == [
        "libggml-base.so",
        "/usr/bin/libggml-cuda.so",
    ]
    assert cfg.provenance()["prepare.remoting_env.ggml_libs.1"] == "preset:remoting"
    assert load(cfg_file, "remoting_quoted").get_config("prepare.remoting_env.ggml_libs[0]") == (
        "first.so"
    )


@pytest.mark.parametrize("key", ["a..b", "a[x]", "a[0]b", 'a["x]', "a.", ""])
def test_malformed_keys_are_one_line_errors(cfg_file, key):
    with pytest.raises(ConfigError, match="invalid config key"):
        load(cfg_file).get_config(key)


def test_int_keys_are_found_and_explained(cfg_file):
    cfg = load(cfg_file)
    assert cfg.get_config("tests.1") == "numbered"
    assert cfg.explain("tests.1") == [("base", "tests.1", "numbered")]


def test_unknown_key_never_suggests_itself(cfg_file):
    cfg = load(cfg_file)
    with pytest.raises(ConfigError) as err:
        cfg.explain("tests.2")
    assert "nearest existing key: 'tests.2'" not in str(err.value)


# -- presets


def test_a_preset_edits_another_preset_before_it_applies(cfg_file):
    cfg = load(cfg_file, "edits_light")
    assert cfg.get_config("tests.x.gpu") == 1
    assert cfg.get_config("tests.x.name") == "light"
    # The edit lasts for the rest of the load, as in TOPSAIL.
    assert cfg.get_config('ci_presets.light["tests.x.gpu"]') == 1
    assert load(cfg_file, "light").get_config("tests.x.gpu") == 0


def test_a_preset_cannot_invent_a_key_of_another_preset(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("a: {b: 1}\nci_presets:\n  p: {a.b: 2}\n  q: {'ci_presets.p[\"a.c\"]': 3}\n")
    with pytest.raises(ConfigError, match=r"preset 'p' has no key 'a.c'"):
        load(path, "q")


def test_an_override_of_an_applied_preset_is_refused_not_ignored(cfg_file):
    # Overrides apply after presets: editing a preset already applied would change nothing.
    edit = ("cli", {'ci_presets.light["tests.x.gpu"]': 7})
    with pytest.raises(ConfigError, match=r"preset 'light' was already applied"):
        load(cfg_file, "light", overrides=[edit])
    # A preset that is not applied may be edited (it is data, as in TOPSAIL).
    assert load(cfg_file, overrides=[edit]).get_config('ci_presets.light["tests.x.gpu"]') == 7


@pytest.mark.parametrize("name", ["names", "name", "local_config", "to_apply"])
def test_bookkeeping_entries_are_not_presets(cfg_file, name):
    with pytest.raises(ConfigError, match=rf"'{name}' is a bookkeeping entry of ci_presets"):
        load(cfg_file, name)
    assert name not in load(cfg_file).presets()


def test_names_records_the_presets_applied(cfg_file):
    cfg = load(cfg_file, "edits_light")
    assert cfg.get_config("ci_presets.names") == ["edits_light", "light"]
    assert cfg.presets_applied == ["edits_light", "light"]


def test_to_apply_and_variable_overrides_apply_first(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "a: {b: 1, c: 1}\n"
        "ci_presets:\n"
        "  to_apply: p\n"
        "  variable_overrides: {a.c: 5}\n"
        "  p: {a.b: 2, a.c: 2}\n"
        "  q: {a.b: 3}\n"
    )
    cfg = load(path, "q")
    assert (cfg.get_config("a.b"), cfg.get_config("a.c")) == (3, 5)
    assert [layer for layer, _, _ in cfg.explain("a.c")] == ["base", "preset:p", "var:config"]
    assert cfg.overrides == {}  # the config's own overrides are not a run's input


def test_overrides_cannot_set_bookkeeping(cfg_file):
    with pytest.raises(ConfigError, match="bookkeeping entries are read from the config file"):
        load(cfg_file, overrides=[("cli", {"ci_presets.to_apply": ["light"]})])


# -- references


def test_whole_value_and_in_string_references(cfg_file):
    cfg = load(cfg_file)
    assert cfg.get_config("prepare.uses_namespace") == "llm-d-project"
    assert cfg.get_config("prepare.indirect") == "llm-d-project"
    assert cfg.get_config("prepare.binary.base_url") == "https://example.org/crc/2.54.0"
    assert cfg.get_config("prepare.binary.file") == "crc-2.54.0-llm-d-project.pkg"
    assert cfg.get_config("prepare.list_of_refs") == ["llm-d-project"]
    assert cfg.effective()["prepare"]["uses_namespace"] == "@prepare.namespace.name"


def test_references_follow_overrides(cfg_file):
    cfg = load(cfg_file, overrides=[("cli", {"prepare.namespace.name": "other"})])
    assert cfg.get_config("prepare.indirect") == "other"
    assert cfg.resolved()["prepare"]["binary"]["file"] == "crc-2.54.0-other.pkg"


def test_reference_cycles_and_missing_targets(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("a: '@b'\nb: 'x-{@c}'\nc: '@a'\nd: '@nope.key'\ne: {f: '@e'}\ng: '*@b'\n")
    cfg = config.load(config_file=path)
    with pytest.raises(ConfigError, match=r"reference cycle in .*: a -> b -> c -> a"):
        cfg.get_config("a")
    with pytest.raises(ConfigError, match=r"d: reference '@nope.key'.*'nope.key' does not exist"):
        cfg.get_config("d")
    with pytest.raises(ConfigError, match=r"reference cycle .*: e -> e.f -> e"):
        cfg.get_config("e")
    with pytest.raises(ConfigError, match=r"'\*@' references are not supported"):
        cfg.get_config("g")


def test_explain_shows_the_reference_chain(cfg_file):
    cfg = load(cfg_file)
    assert cfg.reference_chain("prepare.indirect") == [
        {"reference": "@prepare.uses_namespace", "key": "prepare.uses_namespace",
         "value": "@prepare.namespace.name"},
        {"reference": "@prepare.namespace.name", "key": "prepare.namespace.name",
         "value": "llm-d-project"},
    ]  # fmt: skip


# -- secret files


def test_secret_file_reference_needs_handled_secretly(cfg_file, secrets_dir):
    cfg = load(cfg_file)
    with pytest.raises(ConfigError, match=r"reads a secret file: read it with .*handled_secretly"):
        cfg.get_config("remote_host.hostname")
    with redact.isolated_registry():
        value = cfg.get_config("remote_host.hostname", handled_secretly=True)
        assert value == "m4.internal.example" and isinstance(value, config.Secret)
        assert redact.redact_text("ssh m4.internal.example") == "ssh ***"


def test_secret_file_follows_the_preset_that_names_it(cfg_file, secrets_dir):
    cfg = load(cfg_file, "mac5")
    assert cfg.get_config("remote_host.hostname", handled_secretly=True) == (
        "mac5.internal.example"
    )


def test_secret_file_errors_name_the_variable_and_file(cfg_file, secrets_dir, monkeypatch):
    cfg = load(cfg_file, overrides=[("cli", {"secrets.hostname": "missing-file"})])
    with pytest.raises(UserError, match=r"secrets/missing-file: no such file"):
        cfg.get_config("remote_host.hostname", handled_secretly=True)
    cfg = load(cfg_file, overrides=[("cli", {"secrets.hostname": "../outside"})])
    with pytest.raises(ConfigError, match="must name a file inside the secrets directory"):
        cfg.get_config("remote_host.hostname", handled_secretly=True)
    monkeypatch.delenv("BOSUN_TEST_SECRET_PATH")
    with pytest.raises(ConfigError, match=r"from \$BOSUN_TEST_SECRET_PATH, which is not set"):
        load(cfg_file).get_config("remote_host.hostname", handled_secretly=True)


def test_secret_content_never_reaches_show_or_snapshot(cfg_file, secrets_dir, tmp_path):
    cfg = load(cfg_file)
    cfg.get_config("remote_host.hostname", handled_secretly=True)
    shown = yamlio.dumps(config.mask(cfg.resolved()))
    assert "internal.example" not in shown
    assert "hostname: '*$@secrets.hostname'" in shown
    cfg.write_snapshot(tmp_path / "snap")
    for path in (tmp_path / "snap").iterdir():
        assert "internal.example" not in path.read_text()
    provenance = yamlio.load_file(tmp_path / "snap" / "config_provenance.yaml")
    assert provenance["remote_host.hostname"] == (
        "base (secret file $BOSUN_TEST_SECRET_PATH/mac_ai__hostname.mac-m4)"
    )
    chain = cfg.reference_chain("remote_host.hostname")
    assert chain[-1] == {
        "reference": "*$@secrets.hostname",
        "secret_file": "$BOSUN_TEST_SECRET_PATH/mac_ai__hostname.mac-m4",
    }


# -- masking by source


def test_masking_is_by_source_not_by_key_name(cfg_file):
    cfg = load(cfg_file)
    shown = config.mask(cfg.resolved())
    assert shown["tests"]["x"]["max_input_tokens"] == 2047
    assert shown["tests"]["x"]["min_input_tokens"] == 0
    assert shown["secrets"]["hostname"] == "mac_ai__hostname.mac-m4"  # a file name, not a secret


def test_a_token_given_with_var_is_masked_in_the_snapshot(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("platform: {token: null, url: null}\nnotify: {webhook_url: null}\n")
    overrides = [
        ("cli", config.parse_var("platform.token: tok-abcdef-123456")),
        ("trigger", config.parse_var("notify.webhook_url: https://hooks.example/T0/B0/xyz")),
        ("cli", config.parse_var("platform.url: https://rsp.example")),
    ]
    with redact.isolated_registry():
        cfg = config.load(config_file=path, overrides=overrides)
        cfg.write_snapshot(tmp_path / "snap")
        written = {p.name: p.read_text() for p in (tmp_path / "snap").iterdir()}
        for name, text in written.items():
            assert "tok-abcdef-123456" not in text and "hooks.example" not in text, name
        assert "https://rsp.example" in written["config.yaml"]
        # Registered: masked wherever else it shows up (logs, args.yaml...).
        assert redact.redact_text("Bearer tok-abcdef-123456") == "Bearer ***"
        assert cfg.get_config("platform.token") == "tok-abcdef-123456"  # the code gets it


def test_secret_tag_marks_a_value(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("db: {dsn: !secret postgres://u:p@h/db, host: h}\n")
    cfg = config.load(config_file=path)
    assert config.mask(cfg.resolved())["db"] == {"dsn": "***", "host": "h"}
    with pytest.raises(UserError, match="!secret marks a string"):
        config.parse_var("db.dsn: !secret [a]")


def test_ci_run_keeps_a_secret_var_out_of_every_artifact(tmp_path):
    """A value marked !secret in --var, echoed by the example's cleanup step: masked everywhere."""
    from tests.helpers import REPO, run_cli

    secret = "s3cr3t-given-on-the-command-line"
    proc = run_cli(
        REPO / "ci" / "run",
        "example",
        "cleanup",
        "--var",
        f"tests.cleanup.message: !secret {secret}",
        env={"ARTIFACT_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files)
    for path in files:
        assert secret not in path.read_text(errors="replace"), path
