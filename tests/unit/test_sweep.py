"""Parameter sweeps: one run of the step per combination, settings written, resumable."""

from __future__ import annotations

import pytest
import yaml

from library import config, env
from library.config import ProjectConfig
from library.errors import CheckFailed, ConfigError
from library.report import post_mortem
from library.sweep import run_sweep
from tests.helpers import REPO, run_cli

BASE = {
    "tests": {"scale": {"users": [10, 50, 100], "business": ["empty", "tap"], "seed": 7}},
    "sweep": ["tests.scale.users", "tests.scale.business"],
}


def _recorder(cfg, fail_on=None):
    calls = []

    def step():
        users = cfg.get_config("tests.scale.users")
        business = cfg.get_config("tests.scale.business")
        calls.append((users, business, env.artifact_dir().name))
        if (users, business) == fail_on:
            raise RuntimeError("platform said no")

    return step, calls


def test_sweep_runs_every_combination_then_resumes(artifact_dir):
    cfg = ProjectConfig(BASE)
    step_dir = artifact_dir / "000__test"
    step, calls = _recorder(cfg)
    with config.using(cfg), env.using_artifact_dir(step_dir):
        outcome = run_sweep(step)
    assert [(u, b) for u, b, _ in calls] == [
        (10, "empty"),
        (10, "tap"),
        (50, "empty"),
        (50, "tap"),
        (100, "empty"),
        (100, "tap"),
    ]
    assert calls[0][2] == "000__sweep__users=10__business=empty"
    assert len(outcome["ran"]) == 6 and outcome["skipped"] == []
    for _, _, name in calls:
        here = step_dir / name
        assert (here / "FINISHED").exists() and (here / "exit_code").read_text() == "0\n"
    settings = yaml.safe_load((step_dir / calls[3][2] / "settings.yaml").read_text())
    assert settings == {"tests.scale.users": 50, "tests.scale.business": "tap"}
    # The config is back to the swept lists afterwards.
    assert cfg.get_config("tests.scale.users") == [10, 50, 100]
    assert cfg.get_config("tests.scale.business") == ["empty", "tap"]

    # A rerun of the same ARTIFACT_DIR (a new test step dir) finds them all finished green.
    again, again_calls = _recorder(cfg)
    with config.using(cfg), env.using_artifact_dir(artifact_dir / "001__test"):
        outcome = run_sweep(again)
    assert again_calls == [] and len(outcome["skipped"]) == 6


def test_failed_combination_fails_the_sweep_and_only_it_reruns(artifact_dir):
    cfg = ProjectConfig(BASE)
    step, calls = _recorder(cfg, fail_on=(50, "tap"))
    expected = r"1 of 6 combination\(s\) failed: 003__sweep__users=50__business=tap"
    with (
        config.using(cfg),
        env.using_artifact_dir(artifact_dir / "000__test"),
        pytest.raises(CheckFailed, match=expected),
    ):
        run_sweep(step)
    assert len(calls) == 6  # the others still ran
    failed = artifact_dir / "000__test" / "003__sweep__users=50__business=tap"
    assert (failed / "exit_code").read_text() == "1\n"
    assert "platform said no" in (failed / "FAILURE").read_text()
    assert cfg.get_config("tests.scale.users") == [10, 50, 100]

    fixed, fixed_calls = _recorder(cfg)
    with config.using(cfg), env.using_artifact_dir(artifact_dir / "001__test"):
        outcome = run_sweep(fixed)
    assert [(u, b) for u, b, _ in fixed_calls] == [(50, "tap")]
    assert len(outcome["skipped"]) == 5


def test_sweep_config_errors_name_the_key(artifact_dir):
    for data, message in (
        ({"tests": {"a": 3}, "sweep": ["tests.a"]}, "tests.a is swept, so it must hold"),
        ({"tests": {"a": [1]}, "sweep": ["tests.b"]}, "tests.b"),
        ({"tests": {"a": [1]}, "sweep": "tests.a"}, "expected a list of dotted config keys"),
    ):
        cfg = ProjectConfig(data)
        with config.using(cfg), pytest.raises(ConfigError, match=message):
            run_sweep(lambda: None)


def test_no_sweep_runs_the_step_once(artifact_dir):
    cfg = ProjectConfig({"tests": {"a": [1, 2]}, "sweep": []})
    calls = []
    with config.using(cfg):
        run_sweep(lambda: calls.append(env.artifact_dir()))
    assert calls == [artifact_dir]


def test_ci_run_sweeps_the_example_and_the_report_plots_it(tmp_path):
    root = tmp_path / "run"
    environ = {"ARTIFACT_DIR": str(root), "BOSUN_HISTORY_DB": str(tmp_path / "h.sqlite")}
    done = run_cli(
        REPO / "ci" / "run", "example", "test", "--preset", "sweep_greetings", env=environ
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sweeps = sorted(root.glob("000__test/*__sweep__*"))
    assert [p.name for p in sweeps] == [
        "000__sweep__pause=0__greeting=hi",
        "001__sweep__pause=0__greeting=hello",
        "002__sweep__pause=0.1__greeting=hi",
        "003__sweep__pause=0.1__greeting=hello",
    ]
    greetings = sorted(p.read_text() for p in sweeps[3].rglob("log.txt"))
    assert any("hello, alpha" in g for g in greetings)
    html = post_mortem(root).read_text()
    assert 'src="sweep.png"' in html and '<section id="sweep">' in html
    again = run_cli(
        REPO / "ci" / "run", "example", "test", "--preset", "sweep_greetings", env=environ
    )
    assert again.returncode == 0
    assert again.stdout.count("already passed") + again.stderr.count("already passed") == 4
    assert list(root.glob("001__test/*__sweep__*")) == []
