"""run.run, run.run_toolbox, run.Parallel: logging, failure aggregation, frozen config."""

import json
import threading

import pytest

from library import config, env, run


def test_run_logs_to_the_artifact_dir(artifact_dir):
    proc = run.run("echo out; echo err >&2", capture_stdout=True)
    assert proc.stdout == "out\n"
    log = (artifact_dir / "run.log").read_text()
    assert "$ echo out; echo err >&2" in log and "err" in log and "[exit 0" in log


def test_run_failure_is_one_line_with_exit_code(artifact_dir):
    with pytest.raises(run.CommandFailed, match=r"command failed \(exit 4\): exit 4"):
        run.run("exit 4")
    assert run.run("exit 4", check=False).returncode == 4


def test_run_toolbox_creates_numbered_dirs(artifact_dir):
    result = run.run_toolbox("shell", "run", cmd="true")
    assert result == {"returncode": 0, "stdout_lines": 0}
    run.run_toolbox("shell", "run", cmd="true", artifact_dir_suffix="again")
    assert sorted(p.name for p in artifact_dir.iterdir()) == [
        "000__shell__run",
        "001__shell__run__again",
    ]


def test_parallel_runs_everything_and_lists_every_failure(artifact_dir):
    seen = []
    lock = threading.Lock()

    def task(name, fail):
        with lock:
            seen.append(name)
        run.run_toolbox("shell", "run", cmd="exit 5" if fail else "true")

    with pytest.raises(run.ParallelFailed) as err, run.Parallel("block") as parallel:
        for i in range(6):
            parallel.delayed(task, f"t{i}", i in (1, 4))
    assert sorted(seen) == [f"t{i}" for i in range(6)]
    message = str(err.value)
    assert "2 task(s) failed" in message and "t1" in message and "t4" in message
    block = artifact_dir / "000__block"
    assert sorted(p.name for p in block.iterdir() if p.is_dir()) == [
        f"{i:03d}__shell__run" for i in range(6)
    ]
    statuses = [
        json.loads((d / "result.json").read_text())["status"]
        for d in sorted(block.iterdir())
        if d.is_dir()
    ]
    assert statuses.count("failure") == 2
    assert "task task('t1', True)" in (block / "FAILURE").read_text()


def test_parallel_without_exit_on_exception_records_only(artifact_dir):
    with run.Parallel("soft", exit_on_exception=False) as parallel:
        parallel.delayed(run.run, "exit 1")
    assert len(parallel.failures) == 1
    assert (artifact_dir / "000__soft" / "FAILURE").exists()


def test_parallel_tasks_see_block_dir_and_frozen_config(artifact_dir, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tests: {count: 1}\n")
    cfg = config.load(config_file=path)
    seen = {}

    def task():
        seen["dir"] = env.artifact_dir()
        config.project.set_config("tests.count", 2)

    with (
        config.using(cfg),
        pytest.raises(run.ParallelFailed, match="refused inside the Parallel block 'p'"),
        run.Parallel("p") as parallel,
    ):
        parallel.delayed(task)
    assert seen["dir"] == artifact_dir / "000__p"
    assert cfg.get_config("tests.count") == 1
    cfg.set_config("tests.count", 3)  # allowed again after the block
    assert cfg.get_config("tests.count") == 3


def test_parallel_body_error_starts_no_task(artifact_dir):
    ran = []
    with pytest.raises(RuntimeError), run.Parallel("body") as parallel:
        parallel.delayed(ran.append, 1)
        raise RuntimeError("before the tasks")
    assert ran == []
