"""A real TOPSAIL project config reads the same in bosun as in TOPSAIL.

Fixture: tests/fixtures/topsail/crc-timing/config.yaml, copied from openshift-psap/topsail
(projects/crc-timing/testing/config.yaml at commit 8b07640039016fb8be52f64a6d12a5cf87363003).
The expected values below were worked out by hand from TOPSAIL's
projects/core/library/config.py (Config.apply_preset, get_config, resolve_reference): a preset
appends its name to ci_presets.names, then applies its keys in order, `extends` at its position;
`@key` and `{@key}` resolve when read; `*$@key` reads the file named by `key` from the directory
in $CRC_MAC_AI_SECRET_PATH (secrets.dir.env_key), only when handled secretly.
"""

import copy

import pytest
import yaml

from library import config
from tests.helpers import REPO, error_lines, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "topsail" / "crc-timing" / "config.yaml"
RUN_TOOLBOX = REPO / "run_toolbox.py"
CRC_BASE = "https://developers.redhat.com/content-gateway/file/pub/openshift-v4/clients/crc/"


def expected(changes: dict[str, object], names: list[str]) -> dict:
    """The base file with TOPSAIL's preset changes and resolved references."""
    data = yaml.safe_load(FIXTURE.read_text())
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        assert last in node, key  # TOPSAIL's set_config refuses keys that do not exist
        node[last] = value
    data["ci_presets"]["names"] = names
    # Read through references (resolve_reference): '@' whole value, '{@...}' inside a string;
    # the '*$@' secret-file references are shown as written.
    data["remote_host"]["private_key_filename"] = data["secrets"]["private_key_path"]
    data["prepare"]["crc"]["binary"]["base_url"] = (
        CRC_BASE + data["prepare"]["crc"]["binary"]["version"]
    )
    return data


MAC5 = {
    "secrets.hostname": "mac_ai__hostname.mac5",
    "secrets.username": "mac_ai__username.mac5",
    "secrets.base_work_dir": "mac_ai__base_work_dir.mac5",
    "remote_host.description": "crc-lab-mac5",
    "cleanup.cleanup_on_exit": True,
}
LIBVIRT = {
    "prepare.crc.bundle.hypervisor": "libvirt",
    "remote_host.arch": "amd64",
    "prepare.crc.bundle.arch": "amd64",
    "prepare.crc.bundle.diskfile": "crc.qcow2",
}
ATUONA = {
    **LIBVIRT,  # `extends: [libvirt]` comes first: libvirt applies, then the preset's own keys
    "secrets.hostname": "mac_ai__hostname.kpouget-atuona",
    "secrets.username": "mac_ai__username.kpouget-atuona",
    "secrets.base_work_dir": "mac_ai__base_work_dir.kpouget-atuona",
    "remote_host.description": "kpouget's Atuona system",
}
LIBVIRT_WIP = {**LIBVIRT, "prepare.crc.bundle.version": "4.19.15", "prepare.crc.bundle.pr": 1168}


def show(*args, env=None):
    proc = run_cli(RUN_TOOLBOX, "config", "show", "--config", FIXTURE, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.mark.parametrize(
    ("preset", "changes", "names"),
    [
        ("mac5", MAC5, ["mac5"]),
        ("kpouget-atuona", ATUONA, ["kpouget-atuona", "libvirt"]),
        ("libvirt_wip", LIBVIRT_WIP, ["libvirt_wip", "libvirt"]),
    ],
)
def test_config_show_matches_topsail(preset, changes, names):
    shown = show("--preset", preset)
    want = expected(changes, names)
    assert shown == want
    for key, value in changes.items():
        node = shown
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert shown["remote_host"]["hostname"] == "*$@secrets.hostname"
    assert shown["remote_host"]["private_key_filename"] == "mac_ai__private_key"
    assert shown["prepare"]["crc"]["binary"]["base_url"].endswith("/crc/2.54.0")


def test_base_config_is_unchanged_without_presets():
    shown = show()
    want = expected({}, [])
    assert shown == want
    raw = yaml.safe_load(FIXTURE.read_text())
    assert copy.deepcopy(raw)["secrets"] == shown["secrets"]  # file names, not masked


def test_secret_files_are_read_only_secretly_and_never_shown(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "mac_ai__hostname.mac5").write_text("mac5.lab.example\n")
    monkeypatch.setenv("CRC_MAC_AI_SECRET_PATH", str(secrets))
    cfg = config.load(config_file=FIXTURE, presets=["mac5"])
    assert cfg.get_config("remote_host.hostname", handled_secretly=True) == "mac5.lab.example"
    env = {"CRC_MAC_AI_SECRET_PATH": str(secrets)}
    proc = run_cli(RUN_TOOLBOX, "config", "show", "--config", FIXTURE, "--preset", "mac5",
                   "--explain", "remote_host.hostname", env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "mac5.lab.example" not in proc.stdout
    rows = yaml.safe_load(proc.stdout)
    assert rows[0] == {"layer": "base", "key": "remote_host.hostname",
                       "value": "*$@secrets.hostname"}  # fmt: skip
    assert rows[-1] == {
        "reference": "*$@secrets.hostname",
        "secret_file": "$CRC_MAC_AI_SECRET_PATH/mac_ai__hostname.mac5",
    }
    cfg.write_snapshot(tmp_path / "snap")
    for path in (tmp_path / "snap").iterdir():
        assert "mac5.lab.example" not in path.read_text()


def test_bookkeeping_entries_are_refused_as_presets():
    proc = run_cli(RUN_TOOLBOX, "config", "show", "--config", FIXTURE, "--preset", "names")
    assert proc.returncode == 2
    [line] = error_lines(proc.stderr)
    assert "'names' is a bookkeeping entry of ci_presets" in line and "mac5" in line
