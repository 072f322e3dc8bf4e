"""The platform against the real sandbox: per-user tokens with scopes, the token-checking TAP
front, the bot-user guard, and labs that cannot read the sandbox's secrets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.lab_fixtures import bot, endpoints, lab_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ep(request):
    return endpoints(request)


@pytest.fixture(scope="module")
def platform(ep):
    """The sandbox as a Platform, with its token-checking TAP front."""
    from library import platform as plat

    resolved = plat.resolve(use_sandbox=True)
    if "auth" not in resolved.tap_urls:
        pytest.fail("the sandbox runs without its TAP front: restart it with `sandbox up`")
    return resolved


async def _get(url: str, token: str, method: str = "GET") -> tuple[int, str]:
    import aiohttp

    async with (
        aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as session,
        session.request(method, url) as resp,
    ):
        return resp.status, await resp.text()


def test_a_hub_token_minted_with_a_narrow_scope_is_refused_outside_it(platform):
    from library import redact
    from library.platform_tokens import provider_for

    user = bot("scope")

    async def go():
        provider = provider_for(platform.tokens)
        try:
            token = await provider.token(user, ["read:users:name!user"])
            again = await provider.token(user, ["read:users:name!user"])
            me = await _get(platform.hub_url + "hub/api/user", token)
            spawn = await _get(platform.hub_url + f"hub/api/users/{user}/server", token, "POST")
            return token, again, me, spawn
        finally:
            await provider.aclose()

    token, again, (me_status, me_body), (spawn_status, spawn_body) = asyncio.run(go())
    assert again == token  # one token per (user, scopes)
    assert me_status == 200 and json.loads(me_body)["name"] == user
    assert json.loads(me_body)["scopes"] == [
        f"read:users:groups!user={user}",
        f"read:users:name!user={user}",
    ]
    assert spawn_status == 403 and "start:servers" in spawn_body
    assert token not in redact.redact_text(f"token={token} and {token}")


def _tap_flock(tmp_path: Path, prefix: str, scopes: list[str]) -> Path:
    path = tmp_path / f"{prefix}.yaml"
    flock = {
        "name": "tap",
        "count": 2,
        "user_spec": {"username_prefix": prefix},
        "scopes": scopes,
        "business": {
            "type": "TAPQueryRunner",
            "options": {
                "queries": ["SELECT TOP 1 objectId FROM sandbox.objects"],
                "idle_time": "500ms",
                "sync": True,
            },
        },
    }
    path.write_text(yaml.safe_dump([flock]))
    return path


def _at_the_front(platform, *, tokens: bool = True) -> dict:
    """PLATFORM with its TAP URL pointed at the token-checking front, as `--tap-url` does (a
    URL the user gave wins over service discovery)."""
    return platform.model_copy(
        update={
            "tap_url": platform.tap("auth"),
            "tokens": platform.tokens if tokens else None,
            "origin": {**platform.origin, "tap_url": "flag"},
        }
    ).to_data()


def _scale(tmp_path: Path, flocks: Path, platform_data: dict) -> dict:
    from library.flock.runner import ScaleRun

    run = ScaleRun.prepare(flocks, duration="4s", endpoints={"platform": platform_data})
    return run.execute(tmp_path / flocks.stem, live=False, min_success_pct=0.0)


def _errors(out_dir: Path) -> set[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(out_dir / "events").to_pydict()
    return {e for e, ok in zip(table["error"], table["success"], strict=True) if not ok}


def test_a_tap_flock_through_the_token_check_uses_each_users_own_token(platform, tmp_path, ep):
    from library.flock.models import load_flocks
    from library.sandbox.hub import api_json

    prefix = f"bot-tapok{uuid.uuid4().hex[:4]}"
    data = _at_the_front(platform)
    flocks = _tap_flock(tmp_path, prefix, ["read:tap"])
    result = _scale(tmp_path, flocks, data)
    flock = result["flocks"]["tap"]
    assert flock["successes"] >= 2 and flock["failures"] == 0, result
    # Each monkey minted a token for its own user, carrying the flock's scope.
    users = [u.username for u in load_flocks(flocks)[0].monkeys()]
    assert len(set(users)) == 2
    for user in users:
        tokens = api_json(f"{ep.hub_api_url}/users/{user}/tokens", ep.token)["api_tokens"]
        mine = [t["scopes"] for t in tokens if t["note"] == "bosun"]
        # The hub adds the token owner's own identity (read:users:name/groups!user=...).
        assert [[s for s in scopes if not s.startswith("read:users:")] for scopes in mine] == [
            ["custom:read:tap"]
        ]


def test_a_tap_flock_without_a_token_fails_clearly(platform, tmp_path):
    data = _at_the_front(platform, tokens=False)  # no token provider at all
    flocks = _tap_flock(tmp_path, f"bot-tapno{uuid.uuid4().hex[:4]}", ["read:tap"])
    result = _scale(tmp_path, flocks, data)
    assert result["flocks"]["tap"]["successes"] == 0
    errors = _errors(tmp_path / flocks.stem)
    assert errors and all("401" in e and "no bearer token" in e for e in errors), errors


def test_a_tap_flock_whose_scopes_lack_read_tap_is_refused(platform, tmp_path):
    data = _at_the_front(platform)
    flocks = _tap_flock(tmp_path, f"bot-tapnb{uuid.uuid4().hex[:4]}", ["exec:notebook"])
    result = _scale(tmp_path, flocks, data)
    assert result["flocks"]["tap"]["successes"] == 0
    errors = _errors(tmp_path / flocks.stem)
    assert errors and all("403" in e and "lacks the scope read:tap" in e for e in errors), errors


def test_a_user_name_with_a_path_is_refused_and_reaches_no_url(ep, tmp_path):
    """`bot-x/../NAME` passed the old `bot-` check and was put into hub URLs unescaped."""
    from library.flock.runner import ScaleRun

    victim = f"alice{uuid.uuid4().hex[:6]}"
    hostile = f"bot-x/../{victim}"
    flocks = tmp_path / "flocks.yaml"
    flocks.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "labs",
                    "count": 1,
                    "users": [{"username": hostile}],
                    "scopes": [],
                    "business": {"type": "NubladoPythonLoop"},
                }
            ]
        )
    )
    from library.errors import UserError

    with pytest.raises(UserError, match="not a valid platform user name"):
        ScaleRun.prepare(flocks)
    cli = subprocess.run(
        [sys.executable, str(ROOT / "run_toolbox.py"), "nublado", "spawn_lab", "--user", hostile],
        capture_output=True,
        text=True,
        env={**os.environ, "ARTIFACT_DIR": str(tmp_path / "artifacts")},
        timeout=120,
    )
    assert cli.returncode == 2, cli.stderr
    errors = [line for line in cli.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not a valid platform user name" in errors[0]
    assert "Traceback" not in cli.stderr
    hub_log = (ep.state_dir / "logs" / "hub.log").read_text(errors="replace")
    assert victim not in hub_log


def test_user_names_are_one_escaped_url_segment():
    from library import urls
    from library.errors import UserError
    from library.jupyter.lab import LabSession

    assert urls.segment("bot-x/../alice") == "bot-x%2F..%2Falice"
    with pytest.raises(UserError, match="not a valid platform user name"):
        LabSession("http://127.0.0.1:1/", "bot-x/../alice", "t" * 20)


def test_a_lab_runs_unprivileged_and_cannot_read_the_sandbox_secrets(ep):
    from library.sandbox.labuser import GAVO_SECRETS

    token_file = ep.state_dir / "orchestrator.token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600" and token_file.stat().st_uid == 0
    code = (
        "import os\n"
        "print('uid', os.getuid())\n"
        "for path in {paths!r}:\n"
        "    try:\n"
        "        open(path).read()\n"
        "        print('READ', path)\n"
        "    except PermissionError:\n"
        "        print('refused', path)\n"
    ).format(
        paths=[
            str(token_file),
            str(ep.state_dir / "hub" / "jupyterhub_cookie_secret"),
            str(ep.state_dir / "hub" / "jupyterhub.sqlite"),
            *[str(p) for p in GAVO_SECRETS if p.exists()],
        ]
    )

    from library import sandbox

    user = bot("secret")

    async def go():
        async with lab_for(ep, user) as lab:
            # The unprivileged lab is still tracked (status lists it, down stops it by PID).
            assert user in [lab["server"] for lab in sandbox.status()["labs"]]
            kernel = await lab.open_kernel()
            try:
                return await kernel.execute(code, timeout=60)
            finally:
                await kernel.aclose()

    result = asyncio.run(go())
    lines = result.stdout.splitlines()
    assert lines[0] != "uid 0" and lines[0].startswith("uid "), result.stdout
    assert len(lines) > 3 and all(line.startswith("refused ") for line in lines[1:]), lines


def test_scale_run_with_tap_url_at_the_front_sends_per_user_tokens(platform, tmp_path):
    """The command line path: `--tap-url` points at the front, the sandbox mints the tokens."""
    flocks = _tap_flock(tmp_path, f"bot-tapcli{uuid.uuid4().hex[:4]}", ["read:tap"])
    cmd = [sys.executable, str(ROOT / "run_toolbox.py"), "scale", "run", "--flocks", str(flocks)]
    cmd += ["--tap-url", platform.tap("auth"), "--duration", "10s", "--no-live"]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, "ARTIFACT_DIR": str(tmp_path / "artifacts")},
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(next((tmp_path / "artifacts").rglob("summary.json")).read_text())
    tap = summary["flocks"]["tap"]
    assert tap["successes"] >= 2 and tap["failures"] == 0


def test_an_async_query_is_followed_through_the_front(platform):
    """DaCHS's redirects name the front, so a UWS job is polled and read through the check."""
    import requests

    from library.platform_tokens import token_now
    from library.tap.client import TapClient

    front = platform.tap("auth")
    token = token_now(platform.tokens, bot("async"), ["read:tap"])
    result = TapClient(front, token=token, timeout=60).execute(
        "SELECT TOP 5 objectId FROM sandbox.objects", True
    )
    assert (result.success, result.rows, result.mode) == (True, 5, "async"), result.error
    job = requests.post(
        f"{front}/async",
        data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT TOP 1 * FROM sandbox.objects"},
        headers={"Authorization": f"Bearer {token}"},
        allow_redirects=False,
        timeout=30,
    )
    try:
        assert job.status_code == 303 and job.headers["Location"].startswith(
            front.removesuffix("/tap")
        )
    finally:
        requests.delete(
            job.headers["Location"], headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
