"""DaCHS prerequisites: when the TAP service cannot run, one line says why and what to do."""

from __future__ import annotations

import pytest

from library.errors import UserError
from library.sandbox import dachs


def test_not_root(monkeypatch):
    monkeypatch.setattr(dachs.Path, "is_file", lambda self: True)
    monkeypatch.setattr(dachs.os, "geteuid", lambda: 1000)
    assert dachs.unavailable_reason() == (
        "the TAP service (GAVO DaCHS) must be started as root; run as root"
    )


def test_package_missing_points_at_make_setup(monkeypatch):
    monkeypatch.setattr(dachs.Path, "is_file", lambda self: True)
    monkeypatch.setattr(dachs.os, "geteuid", lambda: 0)
    monkeypatch.setattr(dachs.shutil, "which", lambda name: None)
    assert dachs.unavailable_reason() == (
        "gavodachs2-server is not installed: run make setup (as root on Debian)"
    )


def test_postgres_extension_missing_names_the_package(monkeypatch):
    monkeypatch.setattr(dachs.os, "geteuid", lambda: 0)
    monkeypatch.setattr(dachs.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(dachs, "_cluster", lambda: ("15", "main"))
    monkeypatch.setattr(dachs.Path, "is_file", lambda self: not str(self).endswith("q3c.control"))
    reason = dachs.unavailable_reason()
    assert reason == "postgresql-15-q3c is not installed: run make setup (as root on Debian)"


def test_up_refuses_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(dachs, "unavailable_reason", lambda: "not Debian")
    with pytest.raises(UserError, match="^not Debian$"):
        dachs.up(tmp_path, 8703, 5)
