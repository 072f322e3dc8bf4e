"""Sandbox start/stop times and idle memory, as ratios against `jupyterhub --version`.

The anchor is the start-up of the same interpreter and package that the hub runs, measured in
the same run, so the figures compare across machines of different speeds.
Run with `make bench` or `pytest tests/bench/bench_sandbox.py -s`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 3


def _anchor_seconds() -> float:
    jupyterhub = Path(sys.executable).parent / "jupyterhub"
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([str(jupyterhub), "--version"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rss_mib(pid: int | None, with_children: bool = False) -> float | None:
    import psutil

    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        procs = [proc, *(proc.children(recursive=True) if with_children else [])]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.NoSuchProcess:
        return None


def _postgres_rss_mib() -> float | None:
    import psutil

    total = 0
    for proc in psutil.process_iter(["name", "memory_info"]):
        if proc.info["name"] and proc.info["name"].startswith("postgres"):
            total += proc.info["memory_info"].rss
    return total / 2**20 if total else None


def _free_base(start: int = 18600) -> int:
    from library.sandbox import state as st

    for base in range(start, start + 400, 10):
        if all(st.port_is_free(base + i) for i in range(4)):
            return base
    raise AssertionError("no four free consecutive ports")


@pytest.fixture
def private_state(monkeypatch):
    root = Path(tempfile.mkdtemp(prefix="bosun-bench-", dir="/tmp"))
    monkeypatch.setenv("BOSUN_SANDBOX_DIR", str(root))
    yield root
    from library import sandbox

    sandbox.down()
    shutil.rmtree(root, ignore_errors=True)


def test_sandbox_up_down_and_idle_rss(private_state):
    from library import sandbox

    anchor = _anchor_seconds()
    base = _free_base()
    # DaCHS is one system-wide server: it is benchmarked only when no other sandbox runs it.
    with_tap = os.environ.get("BOSUN_BENCH_TAP", "0") == "1"
    ups, downs = [], []
    for i in range(ROUNDS):
        t0 = time.perf_counter()
        result = sandbox.up(with_tap=with_tap, port_base=base, timeout=120)
        ups.append(time.perf_counter() - t0)
        if i == ROUNDS - 1:
            time.sleep(5)  # idle
            status = sandbox.status()
            rss = {
                "hub": _rss_mib(status["hub"]["pid"]),
                "proxy": _rss_mib(status["proxy"]["pid"]),
                "dachs": _rss_mib(status["tap"]["pid"]),
                "postgresql (all backends)": _postgres_rss_mib(),
            }
        assert result["hub"]["running"]
        t0 = time.perf_counter()
        sandbox.down()
        downs.append(time.perf_counter() - t0)

    up_s, down_s = statistics.median(ups), statistics.median(downs)
    print(f"\nanchor: `jupyterhub --version` {anchor:.3f} s (median of 3)")
    print(
        f"sandbox up   (tap={with_tap}): median {up_s:.2f} s = {up_s / anchor:.1f} x anchor "
        f"(runs: {', '.join(f'{t:.2f}' for t in ups)})"
    )
    print(
        f"sandbox down (tap={with_tap}): median {down_s:.2f} s = {down_s / anchor:.1f} x anchor "
        f"(runs: {', '.join(f'{t:.2f}' for t in downs)})"
    )
    for name, mib in rss.items():
        print(f"idle RSS {name:28} " + (f"{mib:7.1f} MiB" if mib else "    (not running)"))
