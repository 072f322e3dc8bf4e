"""The HTTP load engine against Locust, and Dask shards, side by side in one run.

1. `HTTPLoop` vs Locust `FastHttpUser`, 1,000 users, no think time, against the same local nginx:
   requests/s and CPU per request, each client pinned to core 0 and nginx to core 1.
   Goal: >= 1.3x Locust.
2. 10,000 users, `GET` a 50 ms endpoint then idle 1 s (ceiling ~9,500 req/s): requests/s, p50,
   peak RSS, for both. Goals: >= 9,000 req/s, p50 <= 60 ms, peak RSS <= 400 MiB.
3. `scale run --workers 2` vs `--workers 1` on a CPU-bound HTTP load (nginx, no think time).
   Goal: >= 1.8x.

The anchor of each comparison is the other client (or the one-worker run) measured in the same
run on the same servers. CPU is the whole client process (start-up included) from getrusage;
peak RSS is polled every 0.2 s. Run with `make bench` or
`pytest tests/bench/bench_scale_http.py -s -o python_files='bench_*.py'`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_CORE, SERVER_CORE = "0", "1"
SHORT_S, LONG_S, DASK_S = 12, 20, 12

NGINX_CONF = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 30000;
events {{ worker_connections 25000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=16384;
    location / {{ return 200 "ok"; }}
  }}
}}
"""

SLOW_SERVER = """
import asyncio, gc, sys
from aiohttp import web
gc.set_threshold(100_000, 50, 100)
try:  # the stand-in platform must not be what limits the clients under test
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass
async def slow(request):
    await asyncio.sleep(0.05)
    return web.Response(text="ok")
app = web.Application()
app.router.add_get("/slow", slow)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, backlog=16384,
            print=None)
"""

ENGINE_RUNNER = """
import json, resource, sys
sys.path.insert(0, {repo!r})
from library.flock.runner import ScaleRun

# Dask starts its workers by spawning: this file is imported again in each of them.
if __name__ == "__main__":
    flocks, out, duration, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    run = ScaleRun.prepare(flocks, duration=duration)
    run.execute(out, workers=int(workers) or None, live=False, min_success_pct=0)
    summary = json.load(open(out + "/summary.json"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["cpu_s"] = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    # Steady state: from 3 s after the first request to 1 s before the last one ended.
    import numpy as np
    from library.events import read_events
    table = read_events(out + "/events")
    ops = table.column("operation").to_numpy(zero_copy_only=False) == "http_request"
    start = table.column("start_us").to_numpy()[ops]
    duration = table.column("duration_us").to_numpy()[ops]
    lo, hi = start.min() + 3_000_000, (start + duration).max() - 1_000_000
    window = (start >= lo) & (start < hi)
    summary["steady"] = dict(rps=float(window.sum() / ((hi - lo) / 1e6)),
                             p50_ms=float(np.median(duration[window]) / 1000))
    print(json.dumps(summary))
"""

LOCUSTFILE = """
from locust import FastHttpUser, constant, task
class User(FastHttpUser):
    wait_time = constant({wait})
    network_timeout = 60.0
    connection_timeout = 60.0
    @task
    def get(self):
        self.client.get({path!r})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is missing: `make setup` installs it (apt nginx-light)"
    d = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    (d / "nginx.conf").write_text(NGINX_CONF.format(d=d, port=port))
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            SERVER_CORE,
            binary,
            "-p",
            str(d),
            "-c",
            str(d / "nginx.conf"),
            "-g",
            "daemon off;",
        ]
    )
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc, signal.SIGQUIT)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("slow")
    (d / "slow.py").write_text(SLOW_SERVER)
    port = _free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, sys.executable, str(d / "slow.py"), str(port)]
    )
    try:
        _wait_port(port)
        yield f"http://127.0.0.1:{port}/slow"
    finally:
        _stop(proc)


class PeakRSS:
    """Polls a process tree's RSS from a thread while the client runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            while not self._stop.wait(0.2):
                total = 0
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
                self.peak = max(self.peak, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def run_engine(
    tmp: Path, name: str, flock: dict, duration: int, workers: int = 0, pin: bool = True
) -> dict:
    import yaml

    d = tmp / name
    d.mkdir()
    (d / "flocks.yaml").write_text(yaml.safe_dump([flock]))
    (d / "runner.py").write_text(ENGINE_RUNNER.format(repo=str(REPO)))
    cmd = [
        sys.executable,
        str(d / "runner.py"),
        str(d / "flocks.yaml"),
        str(d / "out"),
        f"{duration}s",
        str(workers),
    ]
    if pin:
        cmd = ["taskset", "-c", CLIENT_CORE, *cmd]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, CI="1"),
    )
    rss = PeakRSS(proc.pid)
    out, _ = proc.communicate(timeout=duration + 120)
    peak = rss.stop()
    assert proc.returncode == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    ops = summary["flocks"][flock["name"]]["operations"]["http_request"]
    return {
        "requests": ops["count"],
        "failures": ops["failures"],
        "rps": ops["count"] / summary["duration_s"],
        "p50_ms": ops["p50_ms"],
        "cpu_ms_per_req": 1000 * summary["cpu_s"] / max(1, ops["count"]),
        "rss_mib": peak,
        "client_bound": summary["client_bound"],
        "steady": summary["steady"],
    }


def run_locust(tmp: Path, name: str, url: str, users: int, wait: float, duration: int) -> dict:
    from urllib.parse import urlsplit

    d = tmp / name
    d.mkdir()
    parts = urlsplit(url)
    (d / "locustfile.py").write_text(LOCUSTFILE.format(wait=wait, path=parts.path or "/"))
    locust = Path(sys.executable).parent / "locust"
    cmd = [
        "taskset",
        "-c",
        CLIENT_CORE,
        str(locust),
        "-f",
        str(d / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{duration}s",
        "--host",
        f"{parts.scheme}://{parts.netloc}",
        "--csv",
        str(d / "l"),
        "--only-summary",
        "--loglevel",
        "ERROR",
        "--stop-timeout",
        "5",
    ]
    before = os.times()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss = PeakRSS(proc.pid)
    proc.wait(timeout=duration + 120)
    peak = rss.stop()
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    with open(d / "l_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    requests = int(row["Request Count"])
    return {
        "requests": requests,
        "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["Median Response Time"]),
        "cpu_ms_per_req": 1000 * cpu / max(1, requests),
        "rss_mib": peak,
        "client_bound": None,
        "steady": _locust_steady(d / "l_stats_history.csv"),
    }


def _locust_steady(path: Path) -> dict:
    """Same window as the engine's: 3 s after the first second with requests, to 1 s before the
    end, from Locust's per-second history."""
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    rows = [r for r in rows if int(r["Total Request Count"]) > 0]
    first, last = int(rows[0]["Timestamp"]), int(rows[-1]["Timestamp"])
    window = [r for r in rows if first + 3 <= int(r["Timestamp"]) <= last - 1]
    if len(window) < 2:
        return {"rps": float("nan"), "p50_ms": float("nan")}
    count = int(window[-1]["Total Request Count"]) - int(window[0]["Total Request Count"])
    seconds = int(window[-1]["Timestamp"]) - int(window[0]["Timestamp"])
    medians = sorted(float(r["50%"]) for r in window if r["50%"] != "N/A")
    return {"rps": count / seconds, "p50_ms": medians[len(medians) // 2]}


def _line(label: str, r: dict) -> str:
    return (
        f"  {label:<26} {r['rps']:9,.0f} req/s  {r['cpu_ms_per_req']:6.3f} ms CPU/req"
        f"  p50 {r['p50_ms']:7.1f} ms  peak RSS {r['rss_mib']:6.0f} MiB"
        f"  failures {r['failures']}"
        f"\n  {'':<26} steady state: {r['steady']['rps']:9,.0f} req/s"
        f"  p50 {r['steady']['p50_ms']:7.1f} ms"
    )


def test_http_loop_vs_locust_1000_users(nginx, tmp_path):
    flock = {
        "name": "http",
        "count": 1000,
        "user_spec": {"username_prefix": "bot-b"},
        "business": {"type": "HTTPLoop", "options": {"url": nginx, "idle_time": 0}},
    }
    ours = run_engine(tmp_path, "engine", flock, SHORT_S)
    theirs = run_locust(tmp_path, "locust", nginx, 1000, 0, SHORT_S)
    print(
        f"\n1,000 users, no think time, client on core {CLIENT_CORE}, nginx on core "
        f"{SERVER_CORE}, {SHORT_S} s"
    )
    print(_line("HTTPLoop (scale run)", ours))
    print(_line("Locust FastHttpUser", theirs))
    print(
        f"  HTTPLoop / Locust: {ours['rps'] / theirs['rps']:.2f}x req/s, "
        f"{theirs['cpu_ms_per_req'] / ours['cpu_ms_per_req']:.2f}x less CPU per request"
        "   (goal >= 1.3x)"
    )


def test_ten_thousand_users_on_a_50ms_endpoint(slow_server, tmp_path):
    flock = {
        "name": "http",
        "count": 10_000,
        "user_spec": {"username_prefix": "bot-b"},
        "start_batch_size": 2000,
        "start_batch_wait": "200ms",
        "business": {
            "type": "HTTPLoop",
            "options": {"url": slow_server, "idle_time": 1, "timeout": 60},
        },
    }
    ours = run_engine(tmp_path, "engine10k", flock, LONG_S)
    theirs = run_locust(tmp_path, "locust10k", slow_server, 10_000, 1, LONG_S)
    print(f"\n10,000 users, GET 50 ms then idle 1 s (ceiling ~9,500 req/s), {LONG_S} s incl. ramp")
    print(_line("HTTPLoop (scale run)", ours) + f"  client-bound {ours['client_bound']}")
    print(_line("Locust FastHttpUser", theirs))
    print(
        f"  HTTPLoop / Locust: {ours['rps'] / theirs['rps']:.2f}x req/s   "
        "(goals: >= 9,000 req/s, p50 <= 60 ms, peak RSS <= 400 MiB)"
    )


def test_dask_two_workers_vs_one(nginx, tmp_path):
    flock = {
        "name": "http",
        "count": 400,
        "user_spec": {"username_prefix": "bot-b"},
        "business": {"type": "HTTPLoop", "options": {"url": nginx, "idle_time": 0}},
    }
    one = run_engine(tmp_path, "dask1", flock, DASK_S, workers=1, pin=False)
    two = run_engine(tmp_path, "dask2", flock, DASK_S, workers=2, pin=False)
    print(
        f"\nDask LocalCluster, 400 users, no think time, nginx on core {SERVER_CORE}, "
        f"{DASK_S} s (the machine has {os.cpu_count()} cores, shared with nginx)"
    )
    print(_line("1 worker", one))
    print(_line("2 workers", two))
    print(f"  2 workers / 1 worker: {two['rps'] / one['rps']:.2f}x req/s   (goal >= 1.8x)")
