"""The sandbox platform against its real services: lifecycle, auth, TAP, faults."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Private sandboxes use their own ports and state dir, so a developer's sandbox (8700) and the
# session one are left alone. They run without TAP: DaCHS is one system-wide server.


def _free_base(start: int = 18400) -> int:
    from library.sandbox import state as st

    for base in range(start, start + 400, 10):
        if all(st.port_is_free(base + i) for i in range(4)):
            return base
    raise AssertionError("no four free consecutive ports in 18400-18800")


PRIVATE_BASE = _free_base()


@pytest.fixture
def private_sandbox(monkeypatch):
    """A state dir of its own (short: kernel socket paths must stay < 108 chars)."""
    from library import sandbox as sb

    root = Path(tempfile.mkdtemp(prefix="bosun-sbx-", dir="/tmp"))
    monkeypatch.setenv("BOSUN_SANDBOX_DIR", str(root))
    try:
        yield root
    finally:
        sb.down()
        shutil.rmtree(root, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_lab(ep, user: str, timeout: float = 90) -> None:
    import urllib.error

    from library.sandbox import hub

    # 409: the user exists; 400: its server already runs (both left by an earlier session).
    for url in (f"{ep.hub_api_url}/users/{user}", f"{ep.hub_api_url}/users/{user}/server"):
        try:
            hub.api_json(url, ep.token, method="POST")
        except urllib.error.HTTPError as exc:
            if exc.code not in (400, 409):
                raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.api_json(f"{ep.hub_api_url}/users/{user}", ep.token)
        if model["servers"].get("", {}).get("ready"):
            return
        time.sleep(0.5)
    raise AssertionError(f"the lab of {user} was not ready within {timeout} s")


def _status(url: str, token: str | None) -> int:
    from library.sandbox import hub

    return hub.api_status(url, token)


# --- against the session sandbox --------------------------------------------------------


def test_hub_api_answers_with_the_token_and_refuses_without(sandbox):
    assert _status(f"{sandbox.hub_api_url}/users", sandbox.token) == 200
    assert _status(f"{sandbox.hub_api_url}/users", None) in (401, 403)
    assert _status(f"{sandbox.hub_api_url}/users", "not-the-token") in (401, 403)


def test_token_file_is_private(sandbox):
    assert sandbox.token_file.stat().st_mode & 0o777 == 0o600
    assert sandbox.token not in repr(sandbox)


def test_status_reports_the_running_services(sandbox):
    from library import sandbox as sb

    status = sb.status()
    assert status["hub"]["running"] and status["proxy"]["running"]
    assert status["hub"]["url"] == sandbox.hub_url
    assert _alive(status["hub"]["pid"]) and _alive(status["proxy"]["pid"])


def test_env_lines_name_the_token_file_not_the_token(sandbox):
    from library import sandbox as sb

    lines = sb.env_lines()
    assert lines[0] == f"export BOSUN_HUB_URL={sandbox.hub_url}"
    assert f"export BOSUN_TOKEN_FILE={sandbox.token_file}" in lines
    assert not any(sandbox.token in line for line in lines)


def test_tap_count_and_tap_schema(sandbox):
    import pyvo

    assert sandbox.tap_url, "the sandbox runs without TAP (see `sandbox up` output for why)"
    service = pyvo.dal.TAPService(sandbox.tap_url)
    count = service.run_sync("SELECT COUNT(*) AS n FROM sandbox.objects").to_table()[0][0]
    assert 90_000 <= int(count) <= 110_000
    top = service.run_sync("SELECT TOP 1 * FROM sandbox.objects").to_table()
    assert len(top) == 1
    tables = service.run_sync("SELECT table_name FROM TAP_SCHEMA.tables").to_table()
    names = {str(n).lower() for n in tables["table_name"]}
    assert {"sandbox.objects", "sandbox.sources"} <= names


def test_check_command_runs_end_to_end(sandbox):
    from library.sandbox import checks

    result = checks.run(user="bot-sandbox-itest", tap=True)
    assert result["user"] == "bot-sandbox-itest"
    assert result["tap_count"] > 0


# --- private sandboxes ----------------------------------------------------------------------


def test_lifecycle_up_idempotent_status_down_leaves_nothing(private_sandbox):
    from library import sandbox as sb
    from library.sandbox import state as st

    first = sb.up(with_tap=False, port_base=PRIVATE_BASE, timeout=60)
    # The hub and the small services beside it (service discovery, Git LFS).
    assert first["started"] == ["hub", "services"] and first["hub"]["running"]
    assert first["services"]["running"]
    again = sb.up(with_tap=False, port_base=PRIVATE_BASE, timeout=60)
    assert again["already_running"] == ["hub", "services"] and again["started"] == []
    assert again["hub"]["pid"] == first["hub"]["pid"]

    ep = sb.endpoints()
    assert ep.hub_url == f"http://127.0.0.1:{PRIVATE_BASE}/" and ep.tap_url is None
    _start_lab(ep, "bot-lifecycle")
    labs = sb.status()["labs"]
    assert [lab["server"] for lab in labs] == ["bot-lifecycle"]
    pids = [first["hub"]["pid"], first["proxy"]["pid"], labs[0]["pid"], first["services"]["pid"]]

    result = sb.down()
    assert result["still_listening"] == []
    assert not any(_alive(pid) for pid in pids)
    ports = st.Ports.from_base(PRIVATE_BASE)
    assert not any(_listening(p) for p in (ports.hub, ports.proxy_api, ports.hub_internal))
    from library.sandbox import services

    assert not any(_listening(p) for p in services.ports(PRIVATE_BASE).values())
    after = sb.status()
    assert not after["hub"]["running"] and not after["proxy"]["running"] and not after["labs"]
    with pytest.raises(Exception, match="the sandbox is not running"):
        sb.endpoints()


def test_up_cleans_up_after_a_killed_sandbox(private_sandbox):
    from library import sandbox as sb

    first = sb.up(with_tap=False, port_base=PRIVATE_BASE, timeout=60)
    _start_lab(sb.endpoints(), "bot-orphan")
    lab_pid = sb.status()["labs"][0]["pid"]
    # A hard kill leaves the proxy and the lab running (own sessions) and every PID file behind.
    os.kill(first["hub"]["pid"], signal.SIGKILL)
    time.sleep(0.5)
    assert (private_sandbox / "pids" / "hub.pid").exists()

    second = sb.up(with_tap=False, port_base=PRIVATE_BASE, timeout=60)
    assert second["started"] == ["hub"]
    assert not _alive(first["proxy"]["pid"]) and not _alive(lab_pid)
    assert _status(f"{sb.endpoints().hub_api_url}/users", sb.endpoints().token) == 200


def test_port_in_use_is_one_line_naming_port_and_option(private_sandbox):
    from library import sandbox as sb
    from library.errors import UserError

    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", PRIVATE_BASE + 1))
        blocker.listen()
        with pytest.raises(UserError) as info:
            sb.up(with_tap=False, port_base=PRIVATE_BASE, timeout=60)
    message = str(info.value)
    assert "\n" not in message
    assert f"port {PRIVATE_BASE + 1}" in message and "--port-base" in message
    assert not sb.status()["hub"]["running"]


def test_cli_port_in_use_prints_one_line(private_sandbox):
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", PRIVATE_BASE))
        blocker.listen()
        proc = subprocess.run(
            [
                sys.executable,
                "run_toolbox.py",
                "sandbox",
                "up",
                "--no-tap",
                "--port-base",
                str(PRIVATE_BASE),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "ARTIFACT_DIR": str(private_sandbox / "artifacts")},
        )
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "port" in line]
    assert any(f"port {PRIVATE_BASE}" in line and "--port-base" in line for line in lines)
    assert "Traceback" not in proc.stderr


def test_hub_that_does_not_come_up_reports_its_log(private_sandbox, monkeypatch, caplog):
    from library import sandbox as sb
    from library.errors import UserError

    # A proxy command that exits at once makes the hub give up while starting.
    fake = private_sandbox / "fake-proxy"
    fake.write_text("#!/bin/sh\necho 'fake proxy refuses to start' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr("library.sandbox.hub.proxy_command", lambda: fake)
    with pytest.raises(UserError, match="last lines of its log"):
        sb.up(with_tap=False, port_base=PRIVATE_BASE, timeout=30)
    assert "fake proxy refuses to start" in caplog.text
    assert not sb.status()["hub"]["running"]
    urls = [f"http://127.0.0.1:{PRIVATE_BASE + i}/" for i in range(3)]
    for url in urls:
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=2)


def _execute_in_new_kernel(lab_url: str, token: str, code: str) -> str:
    """Start a kernel in a running lab, run CODE, return its stdout (Jupyter messaging)."""
    import asyncio
    import json
    import uuid

    import aiohttp

    async def main() -> str:
        headers = {"Authorization": f"token {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(f"{lab_url}/api/kernels", json={}) as response:
                assert response.status == 201, await response.text()
                kernel = await response.json()
            ws_url = f"{lab_url}/api/kernels/{kernel['id']}/channels".replace("http", "ws", 1)
            msg_id = uuid.uuid4().hex
            out = []
            async with session.ws_connect(ws_url) as ws:
                await ws.send_json(
                    {
                        "header": {
                            "msg_id": msg_id,
                            "msg_type": "execute_request",
                            "username": "",
                            "session": uuid.uuid4().hex,
                            "version": "5.3",
                            "date": "",
                        },
                        "parent_header": {},
                        "metadata": {},
                        "channel": "shell",
                        "buffers": [],
                        "content": {"code": code, "silent": False},
                    }
                )
                async for message in ws:
                    data = json.loads(message.data)
                    if data.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    if data["msg_type"] == "stream":
                        out.append(data["content"]["text"])
                    elif data["msg_type"] == "error":
                        raise AssertionError(f"kernel error: {data['content']['evalue']}")
                    elif (
                        data["msg_type"] == "status"
                        and data["content"]["execution_state"] == "idle"
                    ):
                        break
            await session.delete(f"{lab_url}/api/kernels/{kernel['id']}")
            return "".join(out)

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_a_lab_kernel_uses_the_venv_and_ipc_and_can_query_tap(sandbox):
    from library.sandbox import hub

    user = "bot-sandbox-lab"
    _start_lab(sandbox, user)
    try:
        code = (
            "import os, sys, pyvo\n"
            "print(sys.prefix)\n"
            "print(os.path.realpath(pyvo.__file__))\n"
            "print(sorted(os.listdir(os.environ['JUPYTER_RUNTIME_DIR'])))\n"
        )
        if sandbox.tap_url:
            code += (
                f"s = pyvo.dal.TAPService({sandbox.tap_url!r})\n"
                "print(s.run_sync('SELECT TOP 3 * FROM sandbox.objects').to_table().__len__())\n"
            )
        out = _execute_in_new_kernel(
            f"{sandbox.hub_url}user/{user}", sandbox.token, code
        ).splitlines()
        # The venv itself, or (labs dropped to an unprivileged user who cannot enter the
        # interpreter's directory) the lab Python over the venv's packages.
        assert Path(out[0]) in (Path(sys.prefix), sandbox.state_dir / "labpy")
        assert Path(out[1]).is_relative_to(Path(sys.prefix).resolve())
        assert "-ipc-1" in out[2]  # kernel sockets are ipc files in the short runtime dir
        if sandbox.tap_url:
            assert out[3] == "3"
    finally:
        hub.api_json(f"{sandbox.hub_api_url}/users/{user}/server", sandbox.token, method="DELETE")


def test_cli_env_prints_exports_without_the_token(sandbox):
    proc = subprocess.run(
        [sys.executable, "run_toolbox.py", "sandbox", "env"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = proc.stdout.strip().splitlines()
    assert [line.split("=")[0] for line in lines] == [
        "export BOSUN_HUB_URL",
        "export BOSUN_TAP_URL",
        "export BOSUN_TOKEN_FILE",
    ]
    assert sandbox.token not in proc.stdout + proc.stderr
