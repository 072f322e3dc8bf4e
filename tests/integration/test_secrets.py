"""A whole campaign with recognisable tokens leaves no trace of them anywhere it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
USER = "bot-secretcheck"


def _hub(sandbox, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{sandbox.hub_api_url.rstrip('/')}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {sandbox.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as err:
        if err.code == 409:  # the user exists already
            return {}
        raise
    return json.loads(text) if text else {}


def _run(args: list[str], art: Path, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "CI": "true", "ARTIFACT_DIR": str(art), **env}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600
    )


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path} holds secret #{i}" for i, n in enumerate(needles) if n in data]
    return hits


def sandbox_secrets(sandbox) -> list[str]:
    """Every secret the sandbox keeps in its state dir: the orchestrator's admin token and the
    hub's cookie secret (the hub's database holds only hashes of the users' tokens)."""
    found = [sandbox.token]
    cookie = Path(sandbox.state_dir) / "hub" / "jupyterhub_cookie_secret"
    if cookie.is_file():
        found.append(cookie.read_text().strip())
    return [s for s in found if s]


def test_no_token_in_artifacts_or_logs(sandbox, tmp_path):
    _hub(sandbox, "POST", f"/users/{USER}")
    user_token = _hub(
        sandbox, "POST", f"/users/{USER}/tokens", {"note": "secrets test", "expires_in": 3600}
    )["token"]
    token_file = tmp_path / "user-tokens"
    token_file.write_text(f"{USER}: {user_token}\n")
    token_file.chmod(0o600)
    art = tmp_path / "artifacts"
    stdio = []

    # The daily campaign (admin token from the sandbox), then calls with the user's own token.
    proc = _run(
        [str(REPO / "ci" / "run"), "rsp_checks", "ci", "--preset", "sandbox"], art / "campaign"
    )
    stdio.append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    toolbox = str(REPO / "run_toolbox.py")
    for args in (
        ["nublado", "spawn_lab", "--user", USER, "--token-file", str(token_file)],
        [
            "nublado",
            "run_code",
            "--user",
            USER,
            "--code",
            "print('hello')",
            "--token-file",
            str(token_file),
        ],
        ["nublado", "delete_lab", "--user", USER, "--token-file", str(token_file)],
        [
            "tap",
            "query",
            "--adql",
            "SELECT TOP 3 * FROM sandbox.objects",
            "--token-file",
            str(sandbox.token_file),
        ],
        [
            "tap",
            "query",
            "--use-async",
            "--adql",
            "SELECT TOP 3 * FROM sandbox.objects",
            "--token-file",
            str(sandbox.token_file),
        ],
    ):
        proc = _run([toolbox, *args], art / "calls")
        stdio.append(proc.stdout + proc.stderr)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])

    secrets = [user_token, *sandbox_secrets(sandbox)]
    needles = [s.encode() for s in secrets]
    hits = _files_containing(art, needles) + _files_containing(sandbox.state_dir / "logs", needles)
    hits += [
        f"console output #{i}"
        for i, text in enumerate(stdio)
        if any(secret in text for secret in secrets)
    ]
    assert hits == [], hits
    # The campaign really used the tokens: a lab ran and TAP answered.
    assert list((art / "calls").rglob("executions.json")) and list(
        (art / "calls").rglob("result.json")
    )


def test_no_secret_in_a_scale_run(sandbox, tmp_path):
    """A scale run whose flocks carry secrets every way they can (the admin token through
    token_env, a header, a URL with a password and a token parameter, a
    webhook URL, each TAP monkey's own token): none of them in any file it writes, in the
    sandbox's logs or on the console."""
    import yaml

    header = "hdr-" + os.urandom(12).hex()
    password = "pw-" + os.urandom(12).hex()
    hook = "hook-" + os.urandom(12).hex()
    flocks = tmp_path / "flocks.yaml"
    flocks.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "http",
                    "count": 2,
                    "user_spec": {"username_prefix": "bot-mobusecrethttp"},
                    "scopes": [],
                    "business": {
                        "type": "HTTPLoop",
                        "options": {
                            "url": f"{sandbox.hub_api_url.rstrip('/')}/?access_token={password}",
                            "token_env": "BOSUN_SECRET_TEST_TOKEN",
                            "headers": {"X-Api-Key": header},
                            "idle_time": "200ms",
                        },
                    },
                },
                {
                    "name": "auth",
                    "count": 1,
                    "user_spec": {"username_prefix": "bot-mobusecretpw"},
                    "scopes": [],
                    "business": {
                        "type": "HTTPLoop",
                        "options": {
                            "url": f"http://bot:{password}@127.0.0.1:9/x",
                            "idle_time": "200ms",
                        },
                    },
                },
                {
                    "name": "tap",
                    "count": 2,
                    "user_spec": {"username_prefix": "bot-mobusecrettap"},
                    "scopes": ["read:tap"],
                    "business": {
                        "type": "TAPQuerySetRunner",
                        "options": {"query_set": "bosun-sandbox", "idle_time": "500ms"},
                    },
                },
            ]
        )
    )
    art = tmp_path / "scale"
    proc = _run(
        [
            str(REPO / "run_toolbox.py"),
            "scale",
            "run",
            "--flocks",
            str(flocks),
            "--duration",
            "6s",
            "--min-success-pct",
            "0",
            "--webhook-url",
            f"http://127.0.0.1:9/hooks/{hook}",
        ],
        art,
        BOSUN_SECRET_TEST_TOKEN=sandbox.token,
    )
    stdio = proc.stdout + proc.stderr
    assert proc.returncode == 0, stdio[-3000:]
    secrets = [header, password, hook, *sandbox_secrets(sandbox)]
    needles = [s.encode() for s in secrets]
    hits = _files_containing(art, needles) + _files_containing(sandbox.state_dir / "logs", needles)
    hits += [f"console holds secret #{i}" for i, s in enumerate(secrets) if s in stdio]
    assert hits == [], hits
    # The secrets were really used: the HTTP monkeys reached the hub, TAP answered.
    summary = json.loads(next(art.glob("*__scale__run/summary.json")).read_text())
    assert summary["flocks"]["http"]["successes"] > 0
    assert summary["flocks"]["tap"]["successes"] > 0


def test_a_tap_url_with_a_password_reaches_no_artifact(sandbox, tmp_path):
    """A TAP service URL carrying a password, through a whole query set (sync and async): the
    summaries, results, logs and the console show it masked."""
    if not sandbox.tap_url:
        pytest.fail("the sandbox runs without its TAP service")
    password = "pw" + os.urandom(10).hex()
    scheme, rest = sandbox.tap_url.split("://", 1)
    url = f"{scheme}://bot:{password}@{rest}"
    art = tmp_path / "tap"
    for mode in ([], ["--use-async"]):
        proc = _run(
            [
                str(REPO / "run_toolbox.py"),
                "tap",
                "run_query_set",
                "--service",
                url,
                "--count",
                "3",
                "--token-file",
                str(sandbox.token_file),
                *mode,
            ],
            art,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert password not in proc.stdout + proc.stderr
    assert _files_containing(art, [password.encode()]) == []
    summaries = list(art.glob("*__tap__run_query_set/summary.json"))
    assert len(summaries) == 2
    assert all("bot:***@" in p.read_text() for p in summaries)
