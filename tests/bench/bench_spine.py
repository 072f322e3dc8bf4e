"""Orchestration overheads, each next to its anchor measured in the same run.

- ``./run_toolbox.py --help`` vs ``python -c pass`` (interpreter start): goal <= 0.25 s.
- ``config show`` on a 900-line config with 3 presets: goal <= 0.4 s.
- An in-process ``run.run_toolbox`` no-op call with its artifact dir (goal <= 2 ms) vs the
  same call as a new ``python run_toolbox.py`` process (the subprocess-per-call design).
"""

import statistics
import subprocess
import sys
import time

from library import env, run

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _wall(cmd, repeat=7, **kw):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO, **kw)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _big_config(path):
    lines = ["tests:"]
    for group in range(30):
        lines.append(f"  group{group}:")
        for key in range(28):
            lines.append(f"    key{key}: {group * key}")
    lines.append("ci_presets:")
    for preset in ("one", "two", "three"):
        lines.append(f"  {preset}:")
        for group in range(0, 30, 3):
            lines.append(f"    tests.group{group}.key1: {preset}")
    lines.append("  two:\n    extends: [one]") if False else None
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def test_cli_start_times(tmp_path):
    anchor = _wall([sys.executable, "-c", "pass"])
    help_time = _wall([sys.executable, "run_toolbox.py", "--help"])
    n_lines = _big_config(tmp_path / "config.yaml")
    show_time = _wall(
        [
            sys.executable,
            "run_toolbox.py",
            "config",
            "show",
            "--config",
            str(tmp_path / "config.yaml"),
            "--preset",
            "one",
            "--preset",
            "two",
            "--preset",
            "three",
        ]
    )
    print(f"\n[spine] anchor python -c pass: {anchor * 1000:.0f} ms")
    print(
        f"[spine] ./run_toolbox.py --help: {help_time * 1000:.0f} ms "
        f"({help_time / anchor:.1f}x anchor; goal <= 250 ms)"
    )
    print(
        f"[spine] config show, {n_lines}-line config, 3 presets: {show_time * 1000:.0f} ms "
        f"({show_time / anchor:.1f}x anchor; goal <= 400 ms)"
    )


def test_in_process_call_vs_process_per_call(tmp_path):
    with env.using_artifact_dir(tmp_path / "inproc"):
        run.run_toolbox("shell", "wait")  # warm imports
        n = 300
        start = time.perf_counter()
        for _ in range(n):
            run.run_toolbox("shell", "wait")
        per_call = (time.perf_counter() - start) / n
    process = _wall(
        [sys.executable, "run_toolbox.py", "shell", "wait"],
        repeat=5,
        env={"ARTIFACT_DIR": str(tmp_path / "proc"), "PATH": "/usr/bin:/bin"},
    )
    print(
        f"\n[spine] in-process run_toolbox no-op with artifact dir: {per_call * 1000:.2f} ms/call "
        f"(goal <= 2 ms)"
    )
    print(
        f"[spine] anchor: new python run_toolbox.py process per call: {process * 1000:.0f} ms/call "
        f"-> in-process is {process / per_call:.0f}x cheaper"
    )
