"""Sandbox state dir, port plan, PID tracking and endpoints (real processes and sockets)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from library.errors import UserError
from library.sandbox import state as st


def test_ports_follow_the_base():
    ports = st.Ports.from_base(9000)
    assert (ports.hub, ports.proxy_api, ports.hub_internal, ports.tap) == (9000, 9001, 9002, 9003)
    assert list(ports.named(with_tap=False).values()) == [9000, 9001, 9002]
    assert ports.named()["TAP"] == 9003


def test_state_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BOSUN_SANDBOX_DIR", str(tmp_path))
    assert st.state_dir() == tmp_path
    monkeypatch.delenv("BOSUN_SANDBOX_DIR")
    assert st.state_dir() == st.REPO_ROOT / ".sandbox"


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "bosun-sleeper"],
        start_new_session=True,
    )
    yield proc
    proc.kill()
    proc.wait()


def test_live_process_checks_the_command_and_the_start_time(tmp_path, sleeper):
    pid_file = tmp_path / "x.pid"
    st.write_pid(pid_file, sleeper.pid)
    assert st.live_process(pid_file, "bosun-sleeper").pid == sleeper.pid
    assert st.live_process(pid_file, "jupyterhub") is None
    # Same number, other start time: a reused PID is not ours.
    pid_file.write_text(f'{{"pid": {sleeper.pid}, "create_time": 1.0}}\n')
    assert st.live_process(pid_file, "bosun-sleeper") is None
    # A bare PID (as the hub writes for its proxy) is accepted.
    pid_file.write_text(f"{sleeper.pid}\n")
    assert st.live_process(pid_file, "bosun-sleeper").pid == sleeper.pid


def test_stale_or_garbage_pid_files_are_not_processes(tmp_path, sleeper):
    pid_file = tmp_path / "x.pid"
    assert st.live_process(pid_file, "x") is None
    pid_file.write_text("not a pid\n")
    assert st.live_process(pid_file, "x") is None
    sleeper.kill()
    sleeper.wait()
    pid_file.write_text(f"{sleeper.pid}\n")
    assert st.live_process(pid_file, "bosun-sleeper") is None


def test_stop_process_group_stops_the_children_too(tmp_path):
    import psutil

    script = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(60)']); time.sleep(60)"
    )
    leader = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    proc = psutil.Process(leader.pid)
    assert st.wait_until(lambda: proc.children(), 10)
    child = proc.children()[0]
    st.stop_process_group(proc, timeout=5)
    leader.wait(timeout=5)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_port_checks():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.listen()
        assert not st.port_is_free(port)
        assert st.port_is_listening(port)
    assert st.port_is_free(port)
    assert not st.port_is_listening(port)


def test_tail_returns_the_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    assert st.tail(log, 3).splitlines() == ["line 47", "line 48", "line 49"]
    assert "no log" in st.tail(tmp_path / "missing.log")


def test_endpoints_when_not_running(monkeypatch, tmp_path):
    from library import sandbox
    from library.errors import UserError

    monkeypatch.setenv("BOSUN_SANDBOX_DIR", str(tmp_path))
    with pytest.raises(UserError) as info:
        sandbox.endpoints()
    assert str(info.value) == (
        "the sandbox is not running: start it with ./run_toolbox.py sandbox up"
    )
    assert sandbox.status()["hub"]["running"] is False


def test_endpoints_repr_hides_the_token(tmp_path):
    from library.sandbox import Endpoints

    ep = Endpoints("http://h/", "http://h/hub/api", "s3cr3t-token", tmp_path / "t", None, tmp_path)
    assert "s3cr3t-token" not in repr(ep) and "s3cr3t-token" not in str(ep)


def test_a_long_state_dir_is_refused_before_kernels_fail(tmp_path):
    from library.errors import UserError
    from library.sandbox import hub

    layout = st.Layout(tmp_path / ("x" * 80))
    with pytest.raises(UserError, match="BOSUN_SANDBOX_DIR"):
        hub.check_prerequisites(layout)


def test_token_file_is_created_private_and_kept(tmp_path):
    from library.sandbox import hub

    layout = st.Layout(tmp_path)
    token = hub.ensure_token(layout)
    assert len(token) == 64
    assert layout.token_file.stat().st_mode & 0o777 == 0o600
    assert hub.ensure_token(layout) == token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_start_module_waits_until_it_listens_and_tracks_it(tmp_path):
    port = _free_port()
    pid_file, log_file = tmp_path / "pids" / "x.pid", tmp_path / "logs" / "x.log"
    pid = st.start_module(
        "http.server",
        ["--bind", "127.0.0.1", str(port)],
        pid_file=pid_file,
        log_file=log_file,
        ports={"test server": port},
        what="test server",
        timeout=20,
    )
    try:
        assert st.port_is_listening(port)
        proc = st.live_process(pid_file, "http.server")
        assert proc is not None and proc.pid == pid
        with pytest.raises(UserError, match=rf"port {port} \(again\) is already in use"):
            st.start_module(
                "http.server",
                [],
                pid_file=tmp_path / "y.pid",
                log_file=log_file,
                ports={"again": port},
                what="second",
            )
    finally:
        st.stop_process_group(st.live_process(pid_file, "http.server"))
    assert not st.port_is_listening(port)


def test_start_module_names_the_log_when_the_process_exits(tmp_path):
    pid_file, log_file = tmp_path / "x.pid", tmp_path / "x.log"
    with pytest.raises(
        UserError, match=r"the broken thing exited at start: see .*x\.log: .*No module"
    ):
        st.start_module(
            "library.no_such_module",
            [],
            pid_file=pid_file,
            log_file=log_file,
            ports={"p": _free_port()},
            what="broken thing",
            timeout=20,
        )
    assert not pid_file.exists()
