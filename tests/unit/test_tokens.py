"""Token files and variables: masked once read, loose permissions warned about."""

import logging

import pytest

from library import redact, tokens
from library.errors import UserError


def test_token_file_is_registered_and_loose_mode_warned(tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text("abcdef0123456789\n")
    path.chmod(0o644)
    with redact.isolated_registry(), caplog.at_level(logging.WARNING):
        assert tokens.read_token(path) == "abcdef0123456789"
        assert redact.redact_text("x abcdef0123456789 y") == "x *** y"
    assert "readable by group or others (mode 644): chmod 600" in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with redact.isolated_registry(), caplog.at_level(logging.WARNING):
        tokens.read_token(path)
    assert caplog.text == ""


def test_user_token_lines_register_each_token(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("bot-a: tokenAAAAAAAA\nbot-b: tokenBBBBBBBB\n")
    path.chmod(0o600)
    with redact.isolated_registry():
        tokens.read_secret_file(path)
        assert redact.redact_text("tokenAAAAAAAA tokenBBBBBBBB bot-a") == "*** *** bot-a"


def test_missing_and_empty_files_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"--token-file .*/none: no such file"):
        tokens.read_token(tmp_path / "none")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UserError, match=r"the file is empty"):
        tokens.read_token(tmp_path / "empty")


def test_token_from_env_is_registered(monkeypatch):
    monkeypatch.setenv("BOSUN_TEST_TOKEN", "envtoken-123456")
    with redact.isolated_registry():
        assert tokens.token_from_env("BOSUN_TEST_TOKEN") == "envtoken-123456"
        assert "envtoken-123456" not in redact.redact_text("envtoken-123456")
    assert tokens.token_from_env("BOSUN_TEST_TOKEN_UNSET") is None
