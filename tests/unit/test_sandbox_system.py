"""The Debian package installer: skip rules and the no-op path, against the real dpkg."""

from __future__ import annotations

import shutil

import pytest

from library.sandbox import system


def test_not_root_is_skipped_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    if shutil.which("apt-get") is None:
        pytest.fail("this test needs a Debian machine (apt-get)")
    assert system.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "not running as root" in out[0] and "skipping" in out[0]


def test_not_debian_is_skipped(monkeypatch, capsys):
    monkeypatch.setattr(system.shutil, "which", lambda name: None)
    assert system.main(["nginx"]) == 0
    assert "not a Debian system" in capsys.readouterr().out


def test_package_states_reads_dpkg():
    states = system.package_states(["dpkg", "no-such-package-bosun"])
    assert states == {"dpkg": "ii", "no-such-package-bosun": ""}
    assert system.missing(["dpkg", "no-such-package-bosun"]) == ["no-such-package-bosun"]


def test_everything_installed_runs_nothing(monkeypatch, capsys):
    def forbidden(cmd):
        raise AssertionError(f"ran {cmd} although everything is installed")

    monkeypatch.setattr(system, "_run", forbidden)
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    assert system.main(["dpkg", "coreutils"]) == 0
    assert "all 2 Debian packages already installed" in capsys.readouterr().out


def test_install_order_puts_postgres_before_dachs(monkeypatch):
    calls = []
    installed = set()

    def fake_missing(packages):
        return [p for p in packages if p not in installed]

    def fake_run(cmd):
        calls.append(cmd)
        if "install" in cmd:
            installed.update(cmd[cmd.index("install") + 1 :])

    monkeypatch.setattr(system, "missing", fake_missing)
    monkeypatch.setattr(system, "needs_repair", lambda: False)
    monkeypatch.setattr(system, "postgres_online", lambda: False)
    monkeypatch.setattr(system, "_run", fake_run)
    system.ensure(system.ALL_PACKAGES)

    steps = [" ".join(c[-2:]) if "install" not in c else c[c.index("install") + 1] for c in calls]
    assert calls[0][-1] == "update" and sum(c[-1] == "update" for c in calls) == 1
    assert steps.index("postgresql") < steps.index("main start") < steps.index("gavodachs2-server")
    assert calls[-1][-3:] == ["15", "main", "stop"]
