"""The HTTP load engine against a bare aiohttp loop and Locust, judged by nginx, in one run.

1. 1,000 users, no think time, against nginx's instant `200`: requests/s, CPU per request and
   peak RSS. Goals: >= 1.3x Locust FastHttpUser's requests/s; CPU per request <= 1.25x the bare
   loop's; RSS <= 120 MiB during the load (while nginx counts its requests; the whole
   process's peak, with the events encoded and summarised after the load, prints too). A
   second anchor, the bare loop in a process that has loaded what the
   engine loads before its first event (bosun's load path) and records nothing, splits the
   engine's RSS into the loop, what loading bosun costs before the first event, and what
   running the flock adds.
2. 10,000 users, `GET` a 50 ms endpoint then idle 1 s (ceiling ~9,500 req/s): requests/s, p50,
   CPU per request, peak RSS, intended vs achieved. Goals: >= 9,000 req/s, p50 <= 60 ms,
   <= 0.085 ms CPU/req and <= 1.25x the bare loop's.
3. `scale run --workers 2` vs `--workers 1` on a CPU-bound HTTP load. Goal: >= 1.8x.

Judging is done from outside the clients, the same way for every one of them:
- requests are counted by nginx itself (`stub_status`), not by the client under test (Locust's
  CSV undercounts by 3-4 %);
- the 50 ms endpoint is nginx's `echo_sleep` (Debian's libnginx-mod-http-echo), so no Python
  server competes with the clients for the cores;
- CPU and RSS are polled with psutil over the client's whole process tree (Dask workers,
  Locust's greenlets' process), summed; peak RSS is the highest such sum, and never below
  the largest process's own high-water mark (the kernel's VmHWM, read every 20 ms, which
  catches the peaks between two samples), CPU per request is
  taken over a steady-state window (after the ramp-up, before the stop) so start-up imports do
  not count;
- each comparison runs twice, the second round in the opposite order, and both rounds print;
- the 10,000 users start over one second in the same smooth ramp for every tool: 100 every
  10 ms for the engine (`start_batch_size`/`start_batch_wait`) and the bare loop, Locust's
  spawn rate of 10,000/s. Users that keep their schedule keep their start's phase, so a ramp
  of 2,000 at once every 200 ms sends bursts of 2,000 requests for the whole run, and the
  client's own queue through each burst (0.1 ms of CPU a request: 200 ms for the last one)
  becomes most of the measured p50.
Clients run pinned to core 0, nginx to core 1. Run with `make bench` or
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
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_CORE, SERVER_CORE = "0", "1"
SHORT_S, LONG_S, DASK_S = 12, 20, 12
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
POLL_S = 0.5
HWM_POLL_S = 0.02

NGINX_CONF = """
load_module {echo};
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
    location = / {{ return 200 "ok"; }}
    location = /slow {{ echo_sleep 0.05; echo "ok"; }}
    location = /nginx_status {{ stub_status; }}
  }}
}}
"""

ENGINE_RUNNER = """
import json, sys
sys.path.insert(0, {repo!r})
from library.flock.runner import ScaleRun

# Dask starts its workers by spawning: this file is imported again in each of them.
if __name__ == "__main__":
    flocks, out, duration, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    run = ScaleRun.prepare(flocks, duration=duration)
    run.execute(out, workers=int(workers) or None, live=False, min_success_pct=0)
    print(json.dumps(json.load(open(out + "/summary.json"))))
"""

# The floor: what aiohttp itself costs with the engine's loop and GC settings, no engine.
# With a last argument "loaded", the floor of the engine's memory: bosun's load path imported
# (`library.flock.runner`: the flock models, the engine, the summary), then the same bare loop;
# nothing recorded. (The engine spools its events: the Parquet writer loads after the load.)
BARE_AIOHTTP = """
import asyncio, gc, json, sys, time
import aiohttp
gc.disable()  # as the engine during a load (library/flock/gcpolicy.py)
if sys.argv[-1] == "loaded":
    sys.path.insert(0, sys.argv.pop(-2))
    sys.argv.pop()
    import library.flock.runner
try:
    import uvloop
except ImportError:
    uvloop = None

async def user(session, url, idle, durations):
    perf = time.perf_counter
    while True:
        t0 = perf()
        async with session.get(url) as response:
            await response.read()
        durations.append(perf() - t0)
        if idle:
            await asyncio.sleep(idle)

async def main(url, users, idle, duration, batch, batch_wait):
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    durations, tasks = [], []
    end = time.monotonic() + duration
    for offset in range(0, users, batch):
        if offset:
            await asyncio.sleep(batch_wait)
        tasks += [asyncio.create_task(user(session, url, idle, durations))
                  for _ in range(min(batch, users - offset))]
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    durations.sort()
    print(json.dumps({"p50_ms": 1000 * durations[len(durations) // 2] if durations else 0.0}))

url, users, idle, duration, batch, batch_wait = sys.argv[1:]
with asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop else None) as runner:
    runner.run(main(url, int(users), float(idle), float(duration), int(batch), float(batch_wait)))
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


@dataclass
class Nginx:
    base: str  # http://127.0.0.1:PORT

    @property
    def fast(self) -> str:
        return self.base + "/"

    @property
    def slow(self) -> str:
        return self.base + "/slow"

    def requests(self) -> int:
        """Requests nginx has handled since it started (this status request included)."""
        with urllib.request.urlopen(self.base + "/nginx_status", timeout=10) as response:
            lines = response.read().decode().splitlines()
        # "Active connections: N" / "server accepts handled requests" / " A H R" / ...
        return int(lines[2].split()[2])


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is missing: `make setup` installs it"
    assert Path(ECHO_MODULE).exists(), "nginx's echo module is missing: `make setup` installs it"
    d = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    (d / "nginx.conf").write_text(NGINX_CONF.format(d=d, port=port, echo=ECHO_MODULE))
    cmd = [binary, "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"]
    proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *cmd])
    try:
        _wait_port(port)
        yield Nginx(f"http://127.0.0.1:{port}")
    finally:
        _stop(proc, signal.SIGQUIT)


@dataclass
class Sample:
    t: float
    cpu_s: float
    rss: int
    requests: int


@dataclass
class Watch:
    """Polls the client's process tree (psutil) and nginx's request counter from a thread."""

    pid: int
    nginx: Nginx
    samples: list[Sample] = field(default_factory=list)
    peak_rss: int = 0
    peak_process_rss: int = 0
    # The root process's resident set every HWM_POLL_S: (monotonic time, bytes).
    root_rss: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._cpu: dict[int, float] = {}  # last CPU seen per pid: exited children keep theirs
        self._pids: list[int] = [self.pid]
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        self._hwm_thread = threading.Thread(target=self._poll_high_water, daemon=True)
        self._hwm_thread.start()

    def _poll_high_water(self) -> None:
        """Each process's peak from the kernel's own high-water mark (VmHWM), read every
        HWM_POLL_S: a transient peak between two samples (a scale run reading its events back
        for its summary) counts, which sampling the RSS every POLL_S missed by up to 11 MiB."""
        while not self._stop.wait(HWM_POLL_S):
            for pid in self._pids:
                with (
                    contextlib.suppress(OSError, ValueError),
                    open(f"/proc/{pid}/status", "rb") as status,
                ):
                    for line in status:
                        if line.startswith(b"VmHWM:"):
                            hwm = int(line.split()[1]) * 1024
                            self.peak_process_rss = max(self.peak_process_rss, hwm)
                        elif line.startswith(b"VmRSS:") and pid == self.pid:
                            rss = int(line.split()[1]) * 1024
                            self.root_rss.append((time.monotonic(), rss))
                            break

    def _poll(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while True:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            self._pids = [proc.pid for proc in procs]
            rss = 0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    self._cpu[proc.pid] = times.user + times.system
                    one = proc.memory_info().rss
                    rss += one
                    self.peak_process_rss = max(self.peak_process_rss, one)
            # The tree's sum, sampled; never below its largest process's high-water mark.
            self.peak_rss = max(self.peak_rss, rss, self.peak_process_rss)
            self.samples.append(
                Sample(time.monotonic(), sum(self._cpu.values()), rss, self.nginx.requests())
            )
            if self._stop.wait(POLL_S):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._hwm_thread.join()
        self.peak_rss = max(self.peak_rss, self.peak_process_rss)

    def steady(self, warmup: float) -> dict:
        """Rate and CPU per request from `warmup` s after the first request nginx counted to
        1 s before the last one; every status poll counts one request, taken off."""
        s = self.samples
        net = [x.requests - s[0].requests - i for i, x in enumerate(s)]
        active = [i for i in range(1, len(s)) if net[i] > net[i - 1]]
        if len(active) < 2:
            return {"rps": 0.0, "cpu_ms_per_req": float("nan"), "requests": 0, "load_rss_mib": 0}
        first, last = s[active[0] - 1].t, s[active[-1]].t
        lo = next(i for i in range(len(s)) if s[i].t >= first + warmup or i == active[-1])
        hi = max((i for i in range(lo + 1, len(s)) if s[i].t <= last - 1.0), default=active[-1])
        if hi <= lo:
            lo, hi = active[0] - 1, active[-1]
        requests = net[hi] - net[lo]
        seconds = s[hi].t - s[lo].t
        # Between two samples that both saw nginx counting: the load, without what its process
        # does before (imports) and after (a scale run's encoding and summary).
        begin, end = s[active[0]].t, s[active[-1] - 1].t
        during = [x.rss for x in s if begin <= x.t <= end]
        during += [rss for t, rss in self.root_rss if begin <= t <= end]
        return {
            "rps": requests / seconds,
            "cpu_ms_per_req": 1000 * (s[hi].cpu_s - s[lo].cpu_s) / max(1, requests),
            "requests": net[-1],
            "load_rss_mib": max(during) / 2**20,
        }


def _run(cmd: list[str], nginx: Nginx, warmup: float, timeout: float) -> tuple[dict, str]:
    """Run one client (pinned to CLIENT_CORE unless `cmd` starts with "-"), watched."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            ["taskset", "-c", CLIENT_CORE, *cmd] if cmd[0] != "-" else cmd[1:],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=dict(os.environ, CI="1"),
        )
        watch = Watch(proc.pid, nginx)
        try:
            out, _ = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            watch.stop()
        errors.seek(0)
        assert proc.returncode == 0, f"{cmd[:3]}: {errors.read()[-3000:]}"
    return {
        **watch.steady(warmup),
        "rss_mib": watch.peak_rss / 2**20,
        "process_rss_mib": watch.peak_process_rss / 2**20,
    }, out


def run_engine(
    tmp: Path,
    name: str,
    nginx: Nginx,
    flock: dict,
    duration: int,
    warmup: float,
    workers: int = 0,
    pin: bool = True,
) -> dict:
    import yaml

    d = tmp / name
    d.mkdir()
    (d / "flocks.yaml").write_text(yaml.safe_dump([flock]))
    (d / "runner.py").write_text(ENGINE_RUNNER.format(repo=str(REPO)))
    cmd = [sys.executable, str(d / "runner.py"), str(d / "flocks.yaml"), str(d / "out")]
    cmd += [f"{duration}s", str(workers)]
    result, out = _run(cmd if pin else ["-", *cmd], nginx, warmup, duration + 120)
    summary = json.loads(out.strip().splitlines()[-1])
    ops = summary["flocks"][flock["name"]]["operations"]["http_request"]
    result.update(
        p50_ms=ops["p50_ms"],
        failures=ops["failures"],
        client_bound=summary["client_bound"],
        intended=_intended(ops),
    )
    return result


def _intended(ops: dict) -> str:
    """Intended vs achieved (library/stats.py), when the flock was scheduled."""
    if "intended_per_s" not in ops:
        return ""
    flag = "  BEHIND SCHEDULE" if ops.get("behind_schedule") else ""
    return (
        f"intended {ops['intended_per_s']:,.0f} req/s, achieved {ops['achieved_per_s']:,.0f}"
        f" ({ops['achieved_pct']:.1f} %){flag}; p50/p99 measured {ops['p50_ms']:.1f}/"
        f"{ops['p99_ms']:.1f} ms, from the intended start {ops['corrected_p50_ms']:.1f}/"
        f"{ops['corrected_p99_ms']:.1f} ms; lag p50/p99 {ops['lag_p50_ms']:.1f}/"
        f"{ops['lag_p99_ms']:.1f} ms"
    )


def run_bare(
    tmp: Path,
    nginx: Nginx,
    url: str,
    users: int,
    idle: float,
    duration: int,
    warmup: float,
    loaded: bool = False,
) -> dict:
    script = tmp / "bare_aiohttp.py"
    script.write_text(BARE_AIOHTTP)
    batch, wait = (100, 0.01) if users > 2000 else (users, 0.0)
    cmd = [sys.executable, str(script), url, str(users), str(idle), str(duration)]
    cmd += [str(batch), str(wait), *([str(REPO), "loaded"] if loaded else [])]
    result, out = _run(cmd, nginx, warmup, duration + 120)
    result.update(json.loads(out.strip().splitlines()[-1]), failures=0, intended="")
    return result


def run_locust(
    tmp: Path,
    name: str,
    nginx: Nginx,
    url: str,
    users: int,
    wait: float,
    duration: int,
    warmup: float,
) -> dict:
    from urllib.parse import urlsplit

    d = tmp / name
    d.mkdir()
    parts = urlsplit(url)
    (d / "locustfile.py").write_text(LOCUSTFILE.format(wait=wait, path=parts.path or "/"))
    locust = Path(sys.executable).parent / "locust"
    cmd = [str(locust), "-f", str(d / "locustfile.py"), "--headless", "-u", str(users)]
    cmd += ["-r", str(users), "-t", f"{duration}s", "--host", f"{parts.scheme}://{parts.netloc}"]
    cmd += ["--csv", str(d / "l"), "--only-summary", "--loglevel", "ERROR", "--stop-timeout", "5"]
    result, _ = _run(cmd, nginx, warmup, duration + 120)
    with open(d / "l_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    result.update(
        p50_ms=float(row["Median Response Time"]),
        failures=int(row["Failure Count"]),
        locust_counted=int(row["Request Count"]),
        intended="",
    )
    return result


def _line(label: str, r: dict) -> str:
    text = (
        f"    {label:<28} {r['rps']:9,.0f} req/s  {r['cpu_ms_per_req']:6.3f} ms CPU/req"
        f"  p50 {r['p50_ms']:7.1f} ms  peak RSS {r['rss_mib']:5.0f} MiB"
        f" (largest process {r['process_rss_mib']:4.0f}, during the load"
        f" {r['load_rss_mib']:4.0f})  failures {r['failures']}"
    )
    if "locust_counted" in r:
        text += f"\n    {'':<28} Locust counted {r['locust_counted']:,}, nginx {r['requests']:,}"
    if r.get("intended"):
        text += f"\n    {'':<28} {r['intended']}"
    return text


def _rounds(tools: dict) -> list[dict]:
    """Every tool twice: in the given order, then in the reverse order."""
    names = list(tools)
    results = []
    for order in (names, names[::-1]):
        results.append({name: tools[name]() for name in order})
    return results


def _print(title: str, rounds: list[dict], ratios) -> None:
    print(f"\n{title}")
    for number, results in enumerate(rounds, 1):
        print(f"  round {number} (order: {', '.join(results)})")
        for name, result in results.items():
            print(_line(name, result))
        for line in ratios(results):
            print(f"    {line}")


def test_http_loop_1000_users(nginx, tmp_path):
    flock = {
        "name": "http",
        "count": 1000,
        "user_spec": {"username_prefix": "bot-b"},
        "scopes": [],
        "business": {"type": "HTTPLoop", "options": {"url": nginx.fast, "idle_time": 0}},
    }
    count = iter(range(100))
    tools = {
        "HTTPLoop (scale run)": lambda: run_engine(
            tmp_path, f"engine{next(count)}", nginx, flock, SHORT_S, 3.0
        ),
        "bare aiohttp": lambda: run_bare(tmp_path, nginx, nginx.fast, 1000, 0, SHORT_S, 3.0),
        "bare aiohttp + bosun loaded": lambda: run_bare(
            tmp_path, nginx, nginx.fast, 1000, 0, SHORT_S, 3.0, loaded=True
        ),
        "Locust FastHttpUser": lambda: run_locust(
            tmp_path, f"locust{next(count)}", nginx, nginx.fast, 1000, 0, SHORT_S, 3.0
        ),
    }

    def ratios(r):
        ours, bare, floor, locust = (r[k] for k in tools)
        return [
            f"HTTPLoop / Locust: {ours['rps'] / locust['rps']:.2f}x req/s (goal >= 1.3x); "
            f"CPU/req HTTPLoop / bare aiohttp: "
            f"{ours['cpu_ms_per_req'] / bare['cpu_ms_per_req']:.2f}x (goal <= 1.25x)",
            f"RSS during the load: HTTPLoop {ours['load_rss_mib']:.0f} MiB (goal <= 120): the"
            f" bare loop {bare['load_rss_mib']:.0f}, loading bosun (its modules)"
            f" {floor['load_rss_mib'] - bare['load_rss_mib']:+.0f}, running the flock"
            f" {ours['load_rss_mib'] - floor['load_rss_mib']:+.0f}; whole process"
            f" {ours['rss_mib']:.0f} MiB (its events encoded and summarised after the load)",
        ]

    _print(
        f"1,000 users, no think time, client on core {CLIENT_CORE}, nginx on core {SERVER_CORE},"
        f" {SHORT_S} s, counted by nginx",
        _rounds(tools),
        ratios,
    )


def test_ten_thousand_users_on_a_50ms_endpoint(nginx, tmp_path):
    flock = {
        "name": "http",
        "count": 10_000,
        "user_spec": {"username_prefix": "bot-b"},
        "scopes": [],
        "start_batch_size": 100,
        "start_batch_wait": "10ms",
        "business": {
            "type": "HTTPLoop",
            "options": {"url": nginx.slow, "idle_time": 1, "timeout": 60},
        },
    }
    count = iter(range(100))
    tools = {
        "HTTPLoop (scale run)": lambda: run_engine(
            tmp_path, f"engine10k{next(count)}", nginx, flock, LONG_S, 6.0
        ),
        "bare aiohttp": lambda: run_bare(tmp_path, nginx, nginx.slow, 10_000, 1, LONG_S, 6.0),
        "Locust FastHttpUser": lambda: run_locust(
            tmp_path, f"locust10k{next(count)}", nginx, nginx.slow, 10_000, 1, LONG_S, 6.0
        ),
    }

    def ratios(r):
        ours, bare, locust = (r[k] for k in tools)
        return [
            f"HTTPLoop / Locust: {ours['rps'] / locust['rps']:.2f}x req/s; CPU/req HTTPLoop / "
            f"bare aiohttp: {ours['cpu_ms_per_req'] / bare['cpu_ms_per_req']:.2f}x"
            f" (goals: >= 9,000 req/s, p50 <= 60 ms, <= 0.085 ms and <= 1.25x bare CPU/req);"
            f" client-bound {ours['client_bound']}"
        ]

    _print(
        f"10,000 users, GET a 50 ms nginx endpoint then idle 1 s (ceiling ~9,500 req/s),"
        f" {LONG_S} s incl. ramp, counted by nginx",
        _rounds(tools),
        ratios,
    )


def test_dask_two_workers_vs_one(nginx, tmp_path):
    flock = {
        "name": "http",
        "count": 400,
        "user_spec": {"username_prefix": "bot-b"},
        "scopes": [],
        "business": {"type": "HTTPLoop", "options": {"url": nginx.fast, "idle_time": 0}},
    }
    count = iter(range(100))
    tools = {
        f"{n} worker{'s' * (n > 1)}": lambda n=n: run_engine(
            tmp_path, f"dask{n}-{next(count)}", nginx, flock, DASK_S, 5.0, workers=n, pin=False
        )
        for n in (1, 2)
    }

    def ratios(r):
        one, two = r["1 worker"], r["2 workers"]
        return [f"2 workers / 1 worker: {two['rps'] / one['rps']:.2f}x req/s (goal >= 1.8x)"]

    _print(
        f"Dask LocalCluster, 400 users, no think time, nginx on core {SERVER_CORE}, {DASK_S} s"
        f" (the machine has {os.cpu_count()} cores, shared with nginx)",
        _rounds(tools),
        ratios,
    )
