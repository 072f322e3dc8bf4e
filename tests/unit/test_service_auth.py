"""The service's auth file and scopes, and its config section: what is accepted and refused."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from library.errors import UserError
from library.service.auth import ANONYMOUS, Authenticator, AuthError, Identity, load_entries
from library.service.settings import parse_settings


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _auth(tmp_path, entries) -> Authenticator:
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(entries))
    return Authenticator.from_file(path)


def test_scopes_allow_what_they_name(tmp_path):
    auth = _auth(
        tmp_path,
        [
            {"name": "ops", "token_sha256": _sha("a"), "scopes": ["admin"]},
            {"name": "team", "token_sha256": _sha("t").upper(), "scopes": ["flocks:team-*"]},
            {"name": "ro", "token_sha256": _sha("r"), "scopes": ["read"]},
        ],
    )
    ops, team, ro = (auth.identify(f"Bearer {t}") for t in "atr")
    assert (ops.name, team.name, ro.name) == ("ops", "team", "ro")
    assert auth.identify("token t") == team  # JupyterHub's scheme is accepted too
    auth.check_change(team, "team-a", "pause")
    auth.check_change(ops, "anything", "pause")
    auth.check_admin(ops, "solitary run")
    for who, flock, status in (
        (team, "Team-a", 403),  # case-sensitive glob
        (team, "other", 403),
        (ro, "team-a", 403),
        (ANONYMOUS, "team-a", 401),
    ):
        with pytest.raises(AuthError) as err:
            auth.check_change(who, flock, "pause")
        assert err.value.status == status
    with pytest.raises(AuthError) as err:
        auth.check_admin(team, "solitary run")
    assert err.value.status == 403
    for header in ("Bearer nope", "Basic abc", "Bearer "):
        with pytest.raises(AuthError) as err:
            auth.identify(header)
        assert err.value.status == 401


def test_without_a_file_every_change_is_refused():
    auth = Authenticator.from_file(None)
    assert auth.identify(None) == ANONYMOUS
    auth.check_read(ANONYMOUS)
    for who in (ANONYMOUS, Identity("ops", ("admin",))):
        with pytest.raises(AuthError) as err:
            auth.check_change(who, "x", "create flock")
        assert err.value.status == 403 and "no auth file" in err.value.message
    with pytest.raises(AuthError) as err:
        auth.identify("Bearer anything")
    assert err.value.status == 403


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"name": "x"}, "expected a list"),
        ([{"name": "x", "token_sha256": "plain-token", "scopes": ["admin"]}], "64 hex digits"),
        ([{"name": "x", "token_sha256": _sha("a"), "scopes": ["write"]}], "unknown scope"),
        ([{"name": "x", "token_sha256": _sha("a"), "scopes": ["flocks:"]}], "unknown scope"),
        ([{"name": "x", "token_sha256": _sha("a"), "scopes": []}], "entry 1: scopes"),
        ([{"name": "x", "token_sha256": _sha("a"), "scopes": ["read"], "role": 1}], "role"),
        (
            [
                {"name": "x", "token_sha256": _sha("a"), "scopes": ["read"]},
                {"name": "x", "token_sha256": _sha("b"), "scopes": ["read"]},
            ],
            "entry 2: name 'x' is used twice",
        ),
    ],
)
def test_bad_auth_files_are_one_line(tmp_path, entries, message):
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(entries))
    with pytest.raises(UserError) as err:
        load_entries(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"listen": "8080"}, "service.listen: expected HOST:PORT"),
        ({"prefix": "/mo bu"}, "service.prefix: expected a URL path"),
        ({"flush_interval": "soon"}, "service.flush_interval"),
        ({"pause_labs": "drop"}, "service.pause_labs"),
        ({"max_body_bytes": 10}, "service.max_body_bytes"),
        ({"report": {"time": "25:00"}}, "service.report.time: expected HH:MM"),
        ({"alerts": [{"min_success_pct": 120}]}, "service.alerts.0.min_success_pct"),
        ([], "service: expected a mapping"),
    ],
)
def test_bad_service_sections_name_the_key(section, message):
    with pytest.raises(UserError) as err:
        parse_settings(section, "service")
    assert message in str(err.value)


def test_service_section_defaults_and_prefixes():
    settings = parse_settings(None, "service")
    assert settings.host_port == ("127.0.0.1", 8080)
    assert settings.prefix == "/mobu"
    assert parse_settings({"prefix": "/"}, "s").prefix == ""
    assert parse_settings({"prefix": "api/v1/"}, "s").prefix == "/api/v1"
    assert parse_settings({"flush_interval": "2s"}, "s").flush_interval == 2.0
