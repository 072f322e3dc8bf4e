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

    needles = [user_token.encode(), sandbox.token.encode()]
    hits = _files_containing(art, needles) + _files_containing(sandbox.state_dir / "logs", needles)
    hits += [
        f"console output #{i}"
        for i, text in enumerate(stdio)
        if user_token in text or sandbox.token in text
    ]
    assert hits == [], hits
    # The campaign really used the tokens: a lab ran and TAP answered.
    assert list((art / "calls").rglob("executions.json")) and list(
        (art / "calls").rglob("result.json")
    )
