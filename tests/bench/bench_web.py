"""The web page's cost: what it weighs, how soon it shows a new flock, and the service CPU
that five open pages add to a 10,000-monkey flock.

One `service run` process on 127.0.0.1 runs 10,000 EmptyLoop monkeys (one execution a second
each). Debian's headless Chromium (Playwright) opens the pages. Then:

1. page weight: bytes transferred (headers and bodies) by a first load of the overview and of
   the flock page with an empty cache, and by each page's polling over PHASE_S;
2. time from `PUT /flocks` to the new flock's row on an open overview (five flocks, median
   and max);
3. the service's CPU (its process tree, % of one core) over PHASE_S with no page open, then
   with five pages open (three overviews, two flock pages of the 10,000-monkey flock).

Figures are printed, not asserted. Run with
`.venv/bin/python -m pytest -s -p no:cacheprovider -o python_files='bench_*.py'
tests/bench/bench_web.py`.
"""

from __future__ import annotations

import statistics
import time

import httpx
import psutil

from tests.support.browser import Watched, chromium
from tests.support.service import ServiceProcess, bearer, write_auth

PHASE_S = 30.0
MONKEYS = 10_000


def _flock(name: str, count: int, idle: str = "1s") -> dict:
    return {
        "name": name,
        "count": count,
        "user_spec": {"username_prefix": f"bot-web-{name}"},
        "scopes": [],
        "start_batch_size": 0,
        "business": {"type": "EmptyLoop", "options": {"idle_time": idle}},
    }


def _cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def _cpu_pct(proc: psutil.Process, seconds: float) -> float:
    before, t0 = _cpu_seconds(proc), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (_cpu_seconds(proc) - before) / (time.monotonic() - t0)


def _weight(watched: Watched) -> int:
    return sum(size for _, size in watched.transferred)


def test_web_page_cost(tmp_path):
    svc = ServiceProcess(tmp_path, "--auth-file", str(write_auth(tmp_path / "auth.yaml")))
    svc.wait_ready()
    proc = psutil.Process(svc.proc.pid)
    try:
        with httpx.Client(base_url=svc.url, headers=bearer("admin"), timeout=60) as c:
            assert c.put("/flocks", json=_flock("big", MONKEYS)).status_code == 201
            while c.get("/flocks/big/summary").json()["start_time"] is None:
                time.sleep(0.2)
            time.sleep(5)  # past the start
            idle = _cpu_pct(proc, PHASE_S)
            print(f"\nservice CPU, {MONKEYS} EmptyLoop monkeys, no page open: {idle:.1f} %")

            with chromium() as browser:
                # 1. Page weight, cold cache.
                weights = {}
                for name, path in (("overview", "/web"), ("flock", "/web/flocks/big")):
                    context = browser.new_context(viewport={"width": 1300, "height": 900})
                    watched = Watched.open(context, record_sizes=True)
                    watched.page.goto(svc.url + path, wait_until="networkidle")
                    first = _weight(watched)
                    n_first = len(watched.transferred)
                    # The browser's events reach the handlers only while Playwright waits.
                    watched.page.wait_for_timeout(PHASE_S / 3 * 1000)
                    polled = _weight(watched) - first
                    weights[name] = (first, n_first, polled / (PHASE_S / 3))
                    assert watched.problems == [], watched.problems
                    context.close()
                for name, (first, n, per_s) in weights.items():
                    print(
                        f"page weight {name}: {first / 1024:.1f} KiB in {n} requests "
                        f"(first load, no cache); polling {per_s / 1024:.2f} KiB/s"
                    )

                # 2. PUT -> row on an open overview.
                context = browser.new_context()
                watched = Watched.open(context)
                page = watched.page
                page.goto(svc.url + "/web")
                page.wait_for_selector('tr[data-flock="big"]')
                shown = []
                for i in range(5):
                    name = f"new{i}"
                    t0 = time.monotonic()
                    assert c.put("/flocks", json=_flock(name, 10)).status_code == 201
                    page.wait_for_selector(f'tr[data-flock="{name}"]', timeout=30_000)
                    shown.append(time.monotonic() - t0)
                    time.sleep(0.37 * (i + 1))  # land at other phases of the poll
                print(
                    "PUT /flocks -> row on the overview: "
                    f"median {statistics.median(shown):.2f} s, max {max(shown):.2f} s "
                    f"({', '.join(f'{s:.2f}' for s in shown)})"
                )
                for i in range(5):
                    c.delete(f"/flocks/new{i}")
                context.close()

                # 3. Five pages open.
                contexts = []
                for path in ["/web", "/web", "/web", "/web/flocks/big", "/web/flocks/big"]:
                    context = browser.new_context(viewport={"width": 1300, "height": 900})
                    w = Watched.open(context)
                    w.page.goto(svc.url + path)
                    contexts.append((context, w))
                time.sleep(5)
                busy = _cpu_pct(proc, PHASE_S)
                for context, w in contexts:
                    assert w.problems == [], w.problems
                    context.close()
            print(
                f"service CPU with five pages open: {busy:.1f} % "
                f"(the pages: {busy - idle:+.1f} % of one core)"
            )
    finally:
        svc.stop()
