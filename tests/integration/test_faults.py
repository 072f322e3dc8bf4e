"""Fault injection against the sandbox: a fault proxy, a killed hub, a stopped DaCHS, a killed
kernel, SIGINT/SIGTERM to ci/run. The run continues or stops cleanly, failures are recorded with
their error class and time, monkeys with `restart: true` recover, the report is produced, and
nothing (lab, kernel, bosun process) is left behind.

Tests that take a service down bring the sandbox back with `library.sandbox.up` before they end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from library.events import read_events

sys.path.insert(0, str(Path(__file__).parent))
from faultproxy import FaultProxy  # noqa: E402
from test_scale import hub_get, running_labs  # noqa: E402

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


# --- helpers ---------------------------------------------------------------------------------


def prefix(name: str) -> str:
    return f"bot-f{name}{uuid.uuid4().hex[:4]}"


def write_flocks(path: Path, flocks: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(flocks))
    return path


def start_scale(tmp_path: Path, flocks: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, ARTIFACT_DIR=str(tmp_path / "artifacts"), CI="1")
    return subprocess.Popen(
        [PYTHON, str(REPO / "run_toolbox.py"), "scale", "run", "--flocks", str(flocks), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"did not end within {timeout} s:\n{output[-3000:]}")
    return output


def scale_dir(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "artifacts").glob("*__scale__run")
    return found


def now_us() -> int:
    return time.time_ns() // 1000


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended while waiting for {what}:\n{proc.communicate()[0][-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


def bosun_processes(marker: str) -> list[str]:
    """Live processes (not zombies) of a run whose ARTIFACT_DIR holds MARKER: the launcher,
    toolbox commands, Dask workers all inherit it."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if marker in proc.environ().get("ARTIFACT_DIR", ""):
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:160]}")
        except psutil.Error:
            continue
    return found


def user_processes(sandbox, user_prefix: str) -> list[str]:
    """Labs and kernels of bot users with USER_PREFIX (they run in the users' home dirs)."""
    homes = str(Path(sandbox.state_dir) / "home" / user_prefix)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if (proc.info["cwd"] or "").startswith(homes):
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:160]}")
        except psutil.Error:
            continue
    return found


def assert_nothing_left(sandbox, user_prefix: str) -> None:
    from library import sandbox as sb

    ep = sb.endpoints()
    wait_for(lambda: not running_labs(ep, user_prefix), 60, f"labs of {user_prefix} gone")
    servers = {
        u["name"]: u.get("servers")
        for u in hub_get(ep, "/users")
        if u["name"].startswith(user_prefix)
    }
    assert all(not s for s in servers.values()), servers
    wait_for(lambda: not user_processes(ep, user_prefix), 30, f"processes of {user_prefix} gone")


def restore_sandbox() -> None:
    """Bring every service back (stale PIDs cleaned) and check that it answers."""
    from library import sandbox as sb

    result = sb.up(with_tap=True)
    assert result["hub"]["running"] and result["tap"]["running"], result


# --- 1. the fault proxy between the engine and TAP / the hub API -------------------------------

FAULTS = [  # (mode, settings, seconds on)
    ("status", {"status": 503}, 4.0),
    ("reset", {}, 4.0),
    ("stall", {}, 5.0),
    ("slow", {"chunk": 64, "every": 0.2}, 5.0),
]
TAP_CLASSES = {
    "status": {"TapHTTPError"},
    "reset": {"TapConnectionError"},
    "stall": {"TapTimeout"},
    "slow": {"TapTimeout"},
}
HTTP_CLASSES = {
    "status": {"HTTPStatusError"},
    "reset": {"ClientOSError", "ServerDisconnectedError", "ClientConnectionResetError"},
    "stall": {"TimeoutError"},
    "slow": {"TimeoutError"},
}


def test_proxy_faults_are_recorded_and_the_monkeys_recover(sandbox, tmp_path):
    tap_users, http_users = prefix("ptap"), prefix("phttp")
    upstream_tap = sandbox.tap_url.rsplit("/tap", 1)[0]
    with (
        FaultProxy(upstream_tap, timeout=240) as tap_proxy,
        FaultProxy(sandbox.hub_url, timeout=240) as hub_proxy,
    ):
        common = {"restart": True}
        flocks = write_flocks(
            tmp_path / "flocks.yaml",
            [
                {
                    "name": "tap",
                    "count": 3,
                    "user_spec": {"username_prefix": tap_users},
                    "scopes": [],
                    "business": {
                        "type": "TAPQuerySetRunner",
                        **common,
                        "options": {
                            "query_set": "bosun-sandbox",
                            "query_timeout": 3,
                            "idle_time": "300ms",
                            "error_idle_time": "500ms",
                        },
                    },
                },
                {
                    "name": "http",
                    "count": 2,
                    "user_spec": {"username_prefix": http_users},
                    "scopes": [],
                    "business": {
                        "type": "HTTPLoop",
                        **common,
                        "options": {
                            "url": hub_proxy.url + "/hub/api/",
                            "timeout": "3s",
                            "idle_time": "300ms",
                            "error_idle_time": "500ms",
                        },
                    },
                },
            ],
        )
        proc = start_scale(
            tmp_path,
            flocks,
            "--duration",
            "60s",
            "--tap-url",
            tap_proxy.url + "/tap",
            "--min-success-pct",
            "10",
        )
        windows = {}
        try:
            time.sleep(5)  # healthy first
            for mode, settings, seconds in FAULTS:
                on = now_us()
                tap_settings = dict(settings)
                http_settings = dict(settings)
                if mode == "slow":  # the hub's answer is tiny: trickle it one byte a second
                    http_settings = {"chunk": 1, "every": 1.0}
                tap_proxy.set_mode(mode, **tap_settings)
                hub_proxy.set_mode(mode, **http_settings)
                time.sleep(seconds)
                tap_proxy.set_mode("pass")
                hub_proxy.set_mode("pass")
                windows[mode] = (on, now_us())
                time.sleep(4.5)  # lifted: the monkeys come back
            lifted = now_us()
            time.sleep(5)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            output = finish(proc)
        assert "Traceback" not in output, output[-3000:]
        assert tap_proxy.stats["status"] and tap_proxy.stats["reset"] and tap_proxy.stats["stall"]
        assert hub_proxy.stats["slow"] and tap_proxy.stats["slow"]

    out = scale_dir(tmp_path)
    rows = read_events(out).to_pylist()
    summary = json.loads((out / "summary.json").read_text())
    for flock, op, classes in (
        ("tap", "tap_query", TAP_CLASSES),
        ("http", "http_request", HTTP_CLASSES),
    ):
        mine = [r for r in rows if r["flock"] == flock]
        failed = [r for r in mine if r["operation"] == op and not r["success"]]
        for mode, (on, off) in windows.items():
            # A failure started while the fault was on (the client's timeout may end it later).
            seen = {r["error_class"] for r in failed if on - 500_000 <= r["start_us"] <= off}
            assert seen & classes[mode], (flock, mode, seen, classes[mode])
            assert all(r["error"] and "\n" not in r["error"] for r in failed)
        ok_after = [
            r for r in mine if r["operation"] == op and r["success"] and r["start_us"] > lifted
        ]
        assert {r["monkey"] for r in ok_after} == {
            r["monkey"] for r in mine if r["operation"] == "monkey_start"
        }, flock
        errors = [r for r in mine if r["operation"] == "monkey_error"]
        assert errors and all(r["error_class"] for r in errors)
        counted = summary["flocks"][flock]
        assert counted["failures"] == len(errors)
        assert counted["successes"] == sum(1 for r in mine if r["operation"] == op and r["success"])
        assert counted["operations"][op]["failures"] == len(failed)
    # The post-mortem reads these artifacts as ci/run does.
    from library import report

    index = report.post_mortem(tmp_path / "artifacts")
    assert Path(index).is_file()


# --- 2. the hub killed in the middle of a scale run --------------------------------------------


def test_hub_killed_mid_run_monkeys_recover_after_restart(sandbox, tmp_path):
    from library import sandbox as sb

    users = prefix("hub")
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "python",
                "count": 2,
                "user_spec": {"username_prefix": users},
                "scopes": [],
                "business": {
                    "type": "NubladoPythonLoop",
                    "restart": True,
                    "options": {
                        "code": "print(6*7)",
                        "execution_idle_time": "300ms",
                        "max_executions": 1000,
                        "error_idle_time": "2s",
                        "spawn_timeout": "90s",
                        "jupyter_timeout": "10s",
                        "delete_timeout": "20s",
                    },
                },
            }
        ],
    )
    proc = start_scale(tmp_path, flocks, "--duration", "4m", "--min-success-pct", "10")
    killed = restarted = 0
    try:
        wait_for(
            lambda: len(running_labs(sandbox, users, ready_only=True)) == 2, 120, "2 labs", proc
        )
        time.sleep(3)
        hub_pid = sb.status()["hub"]["pid"]
        assert hub_pid
        killed = now_us()
        os.kill(hub_pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(hub_pid)], timeout=10) if psutil.pid_exists(
            hub_pid
        ) else None
        time.sleep(3)
        restore_sandbox()
        restarted = now_us()
        ep = sb.endpoints()
        wait_for(
            lambda: len(running_labs(ep, users, ready_only=True)) == 2, 150, "labs again", proc
        )
        time.sleep(4)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        output = finish(proc, 150)
        restore_sandbox()
    assert "Traceback" not in output, output[-3000:]
    out = scale_dir(tmp_path)
    rows = read_events(out).to_pylist()
    errors = [r for r in rows if r["operation"] == "monkey_error" and r["start_us"] >= killed]
    assert errors and all(r["error_class"] and "\n" not in r["error"] for r in errors)
    recovered = {
        r["monkey"]
        for r in rows
        if r["operation"] == "execute_code" and r["success"] and r["start_us"] > restarted
    }
    assert recovered == {f"{users}1", f"{users}2"}, recovered
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flocks"]["python"]["failures"] == sum(
        1 for r in rows if r["operation"] == "monkey_error"
    )
    assert_nothing_left(sandbox, users)


# --- 3. DaCHS stopped under a query set and a TAP flock ----------------------------------------


def test_dachs_stopped_mid_query_set_and_flock(sandbox, tmp_path):
    from library import sandbox as sb
    from library.sandbox import dachs

    users = prefix("dachs")
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "tap",
                "count": 2,
                "user_spec": {"username_prefix": users},
                "scopes": [],
                "business": {
                    "type": "TAPQuerySetRunner",
                    "restart": True,
                    "options": {
                        "query_set": "bosun-sandbox",
                        "query_timeout": 5,
                        "idle_time": "300ms",
                        "error_idle_time": "1s",
                    },
                },
            }
        ],
    )
    flock = start_scale(tmp_path, flocks, "--duration", "3m", "--min-success-pct", "10")
    qs_dir = tmp_path / "qs"
    query_set = subprocess.Popen(
        [
            PYTHON,
            str(REPO / "run_toolbox.py"),
            "tap",
            "run_query_set",
            "--query-set",
            "bosun-sandbox",
            "--count",
            "400",
            "--concurrency",
            "2",
            "--timeout",
            "5",
            "--seed",
            "7",
        ],
        cwd=REPO,
        env=dict(os.environ, ARTIFACT_DIR=str(qs_dir), CI="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stopped = restarted = 0
    try:
        time.sleep(6)
        assert query_set.poll() is None, "the query set ended before DaCHS was stopped"
        stopped = now_us()
        dachs.down(Path(sandbox.state_dir))
        time.sleep(5)
        restore_sandbox()
        restarted = now_us()
        qs_out, qs_err = query_set.communicate(timeout=240)
        time.sleep(6)
    finally:
        for p in (query_set, flock):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        output = finish(flock)
        if query_set.poll() is None:
            query_set.kill()
        restore_sandbox()
    assert sb.endpoints().tap_url

    # The query set: failures are connection errors, one line, no traceback.
    assert query_set.returncode not in (0, None)
    err_lines = [line for line in qs_err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 1 and "queries failed" in err_lines[0], qs_err[-2000:]
    assert "Traceback" not in qs_out + qs_err
    (cmd,) = qs_dir.glob("*__tap__run_query_set")
    queries = read_events(cmd).to_pylist()
    failed = [r for r in queries if not r["success"]]
    assert any(r["success"] and r["start_us"] < stopped for r in queries)
    assert failed and {r["error_class"] for r in failed} == {"TapConnectionError"}, {
        (r["error_class"], r["error"]) for r in failed
    }
    assert all(stopped - 1_000_000 <= r["start_us"] for r in failed)
    summary = json.loads((cmd / "summary.json").read_text())
    assert summary["failures"] == len(failed)

    # The flock: the same errors, then queries again once DaCHS is back.
    assert "Traceback" not in output, output[-3000:]
    rows = read_events(scale_dir(tmp_path)).to_pylist()
    bad = [r for r in rows if r["operation"] == "tap_query" and not r["success"]]
    assert bad and {r["error_class"] for r in bad} <= {"TapConnectionError", "TapHTTPError"}
    assert "TapConnectionError" in {r["error_class"] for r in bad}
    back = {
        r["monkey"]
        for r in rows
        if r["operation"] == "tap_query" and r["success"] and r["start_us"] > restarted
    }
    assert back == {f"{users}1", f"{users}2"}


# --- 4. a lab's kernel killed while a NubladoPythonLoop runs -----------------------------------


def kernel_pids(sandbox, user: str) -> list[int]:
    home = str(Path(sandbox.state_dir) / "home" / user)
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if "ipykernel" in line and (proc.info["cwd"] or "").startswith(home):
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


def in_new_lab(pid: int, old_lab: int) -> bool:
    try:
        parent = psutil.Process(pid).parent()
        return (
            parent is not None
            and parent.pid != old_lab
            and "jupyterhub-singleuser" in " ".join(parent.cmdline())
        )
    except psutil.Error:
        return False


def test_killed_kernel_is_a_kernel_death_and_the_monkey_recovers(sandbox, tmp_path):
    users = prefix("kern")
    user = f"{users}1"
    flocks = write_flocks(
        tmp_path / "flocks.yaml",
        [
            {
                "name": "python",
                "count": 1,
                "user_spec": {"username_prefix": users},
                "scopes": [],
                "business": {
                    "type": "NubladoPythonLoop",
                    "restart": True,
                    "options": {
                        "code": "import time; time.sleep(0.5); print(6*7)",
                        "execution_idle_time": "100ms",
                        "max_executions": 1000,
                        "error_idle_time": "1s",
                        "spawn_timeout": "90s",
                        "jupyter_timeout": "20s",
                        "delete_timeout": "30s",
                    },
                },
            }
        ],
    )
    proc = start_scale(tmp_path, flocks, "--duration", "3m", "--min-success-pct", "10")
    try:
        (victim,) = wait_for(lambda: kernel_pids(sandbox, user), 120, "the kernel", proc)
        time.sleep(3)
        killed = now_us()
        old_lab = psutil.Process(victim).ppid()
        os.kill(victim, signal.SIGKILL)
        # Recovered: a kernel of a new lab (not the old lab's automatic restart) runs code.
        wait_for(
            lambda: [p for p in kernel_pids(sandbox, user) if in_new_lab(p, old_lab)],
            120,
            "a kernel in a new lab",
            proc,
        )
        time.sleep(4)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        output = finish(proc)
    assert "Traceback" not in output, output[-3000:]
    rows = read_events(scale_dir(tmp_path)).to_pylist()
    died = [r for r in rows if not r["success"] and r["start_us"] >= killed - 1_000_000]
    assert "KernelDied" in {r["error_class"] for r in died}, {
        (r["operation"], r["error_class"]) for r in died
    }
    assert any(r["operation"] == "monkey_error" and r["error_class"] == "KernelDied" for r in died)
    # The lab of the dead kernel was deleted, and the new one at the end.
    deletes = [r for r in rows if r["operation"] == "delete_lab"]
    assert len(deletes) >= 2 and all(r["success"] for r in deletes)
    assert any(
        r["operation"] == "execute_code" and r["success"] and r["start_us"] > killed for r in rows
    ), [
        (
            r["operation"],
            r["success"],
            r["error_class"],
            r["error"][:80],
            (r["start_us"] - killed) // 1000,
        )
        for r in rows
        if r["start_us"] > killed
    ]
    assert_nothing_left(sandbox, users)


# --- 5. SIGINT / SIGTERM to ci/run mid-campaign -----------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ci_run_signal_mid_campaign_stops_cleanly(sandbox, tmp_path, sig):
    marker = f"fault-ci-{uuid.uuid4().hex[:8]}"
    artifacts = tmp_path / marker
    env = dict(os.environ, ARTIFACT_DIR=str(artifacts), CI="1")
    proc = subprocess.Popen(
        [
            PYTHON,
            str(REPO / "ci" / "run"),
            "scale_friday",
            "test",
            "--preset",
            "friday",
            "--preset",
            "sandbox",
            "--var",
            "tests.scale.campaign: [emptyloop, nublado, tap]",
            "--var",
            "tests.scale.duration: 5m",
            "--var",
            "tests.scale.flocks.emptyloop.count: 20",
            "--var",
            "tests.scale.flocks.nublado.count: 1",
            "--var",
            "tests.scale.flocks.tap.count: 2",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    flocks_yaml = yaml.safe_load((REPO / "projects/scale_friday/flocks/nublado.yaml").read_text())
    users = flocks_yaml[0]["user_spec"]["username_prefix"]
    try:
        wait_for(
            lambda: running_labs(sandbox, users, ready_only=True), 120, "the campaign's lab", proc
        )
        time.sleep(4)
        proc.send_signal(sig)
        output = finish(proc, 150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for name in ("junit.xml", "FINISHED", "exit_code"):
        assert (artifacts / name).is_file(), name
    assert (artifacts / "exit_code").read_text().strip() == str(128 + sig)
    assert f"interrupted by {sig.name}" in (artifacts / "junit.xml").read_text()
    runs = sorted(artifacts.glob("*__test/*__scale_campaign/*__scale__run__*"))
    assert sorted(p.name.split("__")[-1] for p in runs) == ["emptyloop", "nublado", "tap"]
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["stop_reason"] == sig.name, (run.name, summary["stop_reason"])
        rows = read_events(run).to_pylist()  # every part file is a complete Parquet file
        started = sum(1 for r in rows if r["operation"] == "monkey_start")
        stopped = sum(1 for r in rows if r["operation"] == "monkey_stop")
        assert stopped == summary["flocks"][run.name.split("__")[-1]]["started"] >= started > 0
    (nublado_run,) = [r for r in runs if r.name.endswith("__nublado")]
    nublado = read_events(nublado_run).to_pylist()
    assert [r["success"] for r in nublado if r["operation"] == "delete_lab"] == [True]
    assert (artifacts / "report" / "index.html").is_file()
    assert_nothing_left(sandbox, users)
    assert bosun_processes(marker) == []


# --- 6. a second SIGINT/SIGTERM during a lab flock ----------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_never_costs_a_flock_its_records(sandbox, tmp_path, sig):
    """Two signals a second apart while a lab flock runs in the campaign: every flock still
    writes result.json, summary.json and its JUnit case, all before the root junit.xml."""
    marker = f"fault-ci2-{uuid.uuid4().hex[:8]}"
    artifacts = tmp_path / marker
    env = dict(os.environ, ARTIFACT_DIR=str(artifacts), CI="1")
    proc = subprocess.Popen(
        [
            PYTHON,
            str(REPO / "ci" / "run"),
            "scale_friday",
            "test",
            "--preset",
            "friday",
            "--preset",
            "sandbox",
            "--var",
            "tests.scale.campaign: [emptyloop, nublado]",
            "--var",
            "tests.scale.duration: 5m",
            "--var",
            "tests.scale.flocks.emptyloop.count: 5",
            "--var",
            "tests.scale.flocks.nublado.count: 1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    flocks_yaml = yaml.safe_load((REPO / "projects/scale_friday/flocks/nublado.yaml").read_text())
    users = flocks_yaml[0]["user_spec"]["username_prefix"]
    try:
        wait_for(
            lambda: running_labs(sandbox, users, ready_only=True), 120, "the campaign's lab", proc
        )
        time.sleep(3)
        proc.send_signal(sig)
        time.sleep(1)
        proc.send_signal(sig)
        output = finish(proc, 150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    root_junit = artifacts / "junit.xml"
    assert (artifacts / "exit_code").read_text().strip() == str(128 + sig)
    runs = sorted(artifacts.glob("*__test/*__scale_campaign/*__scale__run__*"))
    assert sorted(p.name.split("__")[-1] for p in runs) == ["emptyloop", "nublado"]
    for run in runs:
        for name in ("result.json", "summary.json", "junit.xml", "exit_code"):
            assert (run / name).is_file(), (run.name, name)
            # Written before the root JUnit that merges them, never after it.
            assert (run / name).stat().st_mtime <= root_junit.stat().st_mtime, (run.name, name)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["stop_reason"] == sig.name, (run.name, summary["stop_reason"])
    cases = root_junit.read_text()
    for flock_name in ("emptyloop", "nublado"):
        assert f'name="{flock_name}"' in cases or flock_name in cases, flock_name
    fragment_cases = sum((run / "junit.xml").read_text().count("<testcase") for run in runs)
    assert fragment_cases >= 2
    # Steps (1) + toolbox calls (2) + the flocks' own cases: none of them lost.
    assert cases.count("<testcase") >= 1 + 2 + fragment_cases
    assert_nothing_left(sandbox, users)
    assert bosun_processes(marker) == []


# --- 7. UWS jobs left on the service by an outage -----------------------------------------------


def test_uws_jobs_of_an_outage_are_deleted_once_dachs_answers_again(sandbox, tmp_path):
    """DaCHS stops under an async query set: the jobs whose delete failed are deleted when the
    service is back (within the run's cleanup wait), or listed in jobs_left.txt."""
    import urllib.error
    import urllib.request

    from library.sandbox import dachs

    qs_dir = tmp_path / "qs"
    query_set = subprocess.Popen(
        [
            PYTHON,
            str(REPO / "run_toolbox.py"),
            "tap",
            "run_query_set",
            "--query-set",
            "bosun-sandbox",
            "--use-async",
            "--count",
            "300",
            "--concurrency",
            "4",
            "--timeout",
            "5",
            "--seed",
            "11",
        ],
        cwd=REPO,
        env=dict(os.environ, ARTIFACT_DIR=str(qs_dir), CI="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        time.sleep(6)
        assert query_set.poll() is None, "the query set ended before DaCHS was stopped"
        dachs.down(Path(sandbox.state_dir))
        time.sleep(4)
        restore_sandbox()
        qs_out, qs_err = query_set.communicate(timeout=300)
    finally:
        if query_set.poll() is None:
            query_set.kill()
        restore_sandbox()
    assert "Traceback" not in qs_out + qs_err
    (cmd,) = qs_dir.glob("*__tap__run_query_set")
    rows = [json.loads(line) for line in (cmd / "results.jsonl").read_text().splitlines()]
    undeleted = [r["job_url"] for r in rows if r["job_url"] and r["job_deleted"] is False]
    assert undeleted, "no job lost its delete: the outage did not hit a running job"
    listed = set()
    if (cmd / "jobs_left.txt").exists():
        listed = set((cmd / "jobs_left.txt").read_text().split())
    still_there = []
    for url in undeleted:
        try:
            with urllib.request.urlopen(url, timeout=10):
                still_there.append(url)
        except urllib.error.HTTPError as err:
            if err.code != 404:
                still_there.append(url)
    # Every job is gone from the service, or named for cleanup: none is silently left.
    assert set(still_there) <= listed, set(still_there) - listed
    summary = json.loads((cmd / "summary.json").read_text())
    assert summary["jobs_left"] == len(listed)
