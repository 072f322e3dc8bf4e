"""Trigger rules, events, `trigger match|fire`, the run queue and the results store, through
the real ./run_toolbox.py and real ci/run processes (the example project's steps)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from library.errors import UserError
from library.triggers import events, rules
from tests.helpers import error_lines, run_cli

RULES = [
    {
        "name": "greet on deploy",
        "when": {
            "type": "deploy.finished",
            "environment": ["int", "dev"],
            "repository.full_name": "lsst/*",
            "deployment": {"app": "nublado"},
        },
        "do": [
            {
                "project": "example",
                "step": "test",
                "presets": ["two_names", "sequential"],
                "vars": {"tests.example.names": ["alpha"]},
                "vars_from": {"tests.example.greeting": "message"},
            }
        ],
    },
    {
        "name": "cleanups",
        "when": {"type": "cron.nightly"},
        "do": [
            {"project": "example", "step": "cleanup"},
            {"project": "example", "step": "prepare"},
        ],
    },
]

EVENT = {
    "type": "deploy.finished",
    "id": "deploy-42",
    "environment": "int",
    "repository": {"full_name": "lsst/phalanx"},
    "deployment": {"app": "nublado"},
    "message": "{{ 7*7 }}",
}


def write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_rules_match_exact_glob_alternatives_nested():
    ruleset = rules.parse(RULES, "rules.yaml")
    [run] = ruleset.match(events.from_data(EVENT, "event"))
    assert run.to_dict() == {
        "project": "example",
        "step": "test",
        "presets": ["two_names", "sequential"],
        "vars": {"tests.example.names": ["alpha"], "tests.example.greeting": "{{ 7*7 }}"},
    }
    assert run.event_id == "deploy-42" and run.rule == "rule 1 (greet on deploy)"
    assert run.data["repository"] == "lsst/phalanx"
    for change in (
        {"environment": "prod"},  # not one of the alternatives
        {"repository": {"full_name": "other/phalanx"}},  # glob does not match
        {"deployment": {"app": "tap"}},  # nested field differs
        {"type": "deploy.started"},
    ):
        assert ruleset.match(events.from_data({**EVENT, **change}, "event")) == []
    missing = {k: v for k, v in EVENT.items() if k != "deployment"}
    assert ruleset.match(events.from_data(missing, "event")) == []
    # Same type and value: a number pattern does not match its string, nor true 1.
    typed = rules.parse([{"when": {"n": 1}, "do": [{"project": "example", "step": "test"}]}], "r")
    assert typed.match(events.from_data({"type": "t", "n": 1}, "e"))
    assert not typed.match(events.from_data({"type": "t", "n": "1"}, "e"))
    assert not typed.match(events.from_data({"type": "t", "n": True}, "e"))
    # Two runs of one rule: each its own dedupe key; the same event gives the same keys again.
    nightly = events.from_data({"type": "cron.nightly", "id": "n1"}, "e")
    keys = [r.dedupe_key for r in ruleset.match(nightly)]
    assert len(set(keys)) == 2 and keys == [r.dedupe_key for r in ruleset.match(nightly)]
    # An event without an id: its content is its id (a second delivery is the same event).
    plain = {k: v for k, v in EVENT.items() if k != "id"}
    assert events.from_data(plain, "a").id == events.from_data(dict(plain), "b").id


@pytest.mark.parametrize(
    ("rule_file", "expected"),
    [
        ({"when": {}}, "rules.yaml: expected a list of rules"),
        ([{"do": [{"project": "example", "step": "test"}]}], "rule 1: when: Field required"),
        ([{"when": {}, "do": [{"project": "nope", "step": "test"}]}], "unknown project 'nope'"),
        (
            [{"when": {}, "do": [{"project": "example", "step": "deploy"}]}],
            "project 'example' has no step 'deploy'",
        ),
        (
            [{"when": {"a..b": 1}, "do": [{"project": "example", "step": "test"}]}],
            "bad field path 'a..b'",
        ),
        (
            [
                {
                    "when": {},
                    "do": [
                        {
                            "project": "example",
                            "step": "test",
                            "vars_from": {"tests.example.greeting": "a b"},
                        }
                    ],
                }
            ],
            "bad field path 'a b'",
        ),
        (
            [{"when": {}, "do": [{"project": "example", "step": "test", "presets": ["fast"]}]}],
            "unknown preset 'fast'",
        ),
        (
            [
                {
                    "when": {},
                    "do": [
                        {"project": "example", "step": "test", "vars": {"tests.example.nmes": []}}
                    ],
                }
            ],
            "key 'tests.example.nmes' does not exist",
        ),
        (
            [{"when": {"x": [[1]]}, "do": [{"project": "example", "step": "test"}]}],
            "alternatives are strings",
        ),
        (
            [{"when": {}, "do": [{"project": "example", "step": "test", "run": "x"}]}],
            "do.0.run: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_rule_files_are_one_line(tmp_path, rule_file, expected):
    rules_path = write(tmp_path / "rules.yaml", rule_file)
    event = write(tmp_path / "event.yaml", EVENT)
    done = run_cli("run_toolbox.py", "trigger", "match", "--rules", rules_path, "--event", event)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = error_lines(done.stderr)
    assert expected in line and "rules.yaml" in line, line
    assert "Traceback" not in done.stderr


def test_bad_yaml_and_bad_events_are_one_line(tmp_path):
    good_rules = write(tmp_path / "rules.yaml", RULES)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
        + "".join(
            f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            for p, c in zip("abcdefg", "bcdefgh", strict=True)
        )
    )
    cases = [
        (bomb, write(tmp_path / "e0.yaml", EVENT), "an alias bomb"),
        (good_rules, write(tmp_path / "e1.yaml", {"environment": "int"}), "'type' must be"),
        (good_rules, write(tmp_path / "e2.yaml", ["deploy.finished"]), "an event is a mapping"),
        (good_rules, tmp_path / "missing.yaml", "missing.yaml: no such file"),
        (
            good_rules,
            write(tmp_path / "e3.yaml", {k: v for k, v in EVENT.items() if k != "message"}),
            "sets tests.example.greeting from field 'message', which the event does not have",
        ),
    ]
    for rules_path, event, expected in cases:
        for command in ("match", "fire"):
            done = run_cli(
                "run_toolbox.py",
                "trigger",
                command,
                "--rules",
                rules_path,
                "--event",
                event,
                env={"ARTIFACT_DIR": str(tmp_path / "art")},
            )
            assert done.returncode == 2, (command, done.stderr)
            [line] = error_lines(done.stderr)
            assert expected in line, (command, line)
            assert "Traceback" not in done.stderr


def test_match_prints_the_runs_and_runs_nothing(tmp_path):
    rules_path = write(tmp_path / "rules.yaml", RULES)
    queue = tmp_path / "queue.sqlite"
    env = {"BOSUN_QUEUE_STORE": str(queue), "ARTIFACT_DIR": str(tmp_path / "art")}
    matched = run_cli(
        "run_toolbox.py",
        "trigger",
        "match",
        "--rules",
        rules_path,
        "--event",
        write(tmp_path / "e.yaml", EVENT),
        env=env,
    )
    assert matched.returncode == 0, matched.stderr
    assert yaml.safe_load(matched.stdout) == [
        {
            "project": "example",
            "step": "test",
            "presets": ["two_names", "sequential"],
            "vars": {"tests.example.names": ["alpha"], "tests.example.greeting": "{{ 7*7 }}"},
        }
    ]
    other = run_cli(
        "run_toolbox.py",
        "trigger",
        "match",
        "--rules",
        rules_path,
        "--event",
        write(tmp_path / "o.yaml", {"type": "other"}),
        env=env,
    )
    assert other.returncode == 0 and yaml.safe_load(other.stdout) == []
    assert not queue.exists() and not (tmp_path / "art").exists()


def test_fire_runs_records_and_dedupes(tmp_path):
    """The event's `{{ 7*7 }}` reaches the run as that literal; a second firing of the same
    event queues nothing; the run and its testcases are results."""
    rules_path = write(tmp_path / "rules.yaml", RULES)
    event = write(tmp_path / "e.yaml", EVENT)
    env = {
        "BOSUN_QUEUE_STORE": str(tmp_path / "queue.sqlite"),
        "BOSUN_RESULTS_STORE": str(tmp_path / "results.sqlite"),
        "ARTIFACT_DIR": str(tmp_path / "art"),
    }
    args = ("run_toolbox.py", "trigger", "fire", "--rules", rules_path, "--event", event)
    fired = run_cli(*args, env=env)
    assert fired.returncode == 0, fired.stderr
    [run_dir] = (tmp_path / "art").glob("000__trigger__fire/runs/000001__example__test")
    assert yaml.safe_load((run_dir / "variable_overrides.yaml").read_text()) == {
        "tests.example.names": ["alpha"],
        "tests.example.greeting": "{{ 7*7 }}",
    }
    greeted = (run_dir / "000__test" / "000__shell__run_argv__greet" / "run.log").read_text()
    assert "{{ 7*7 }}, alpha" in greeted and "49" not in greeted
    snapshot = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert snapshot["tests"]["example"]["greeting"] == "{{ 7*7 }}"
    trigger = json.loads((run_dir / "trigger.json").read_text())
    assert trigger["event_id"] == "deploy-42" and trigger["rule"] == "rule 1 (greet on deploy)"

    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert "queued by an earlier delivery of event deploy-42" in again.stderr
    assert not list((tmp_path / "art").glob("001__trigger__fire/runs/*"))
    listed = run_cli("run_toolbox.py", "trigger", "runs", env=env)
    data = json.loads(listed.stdout)
    assert data["counts"] == {"succeeded": 1} and data["runs"][0]["attempts"] == 1

    query = run_cli(
        "run_toolbox.py", "results", "query", "--testcase", "bosun.example.test", env=env
    )
    assert query.returncode == 0, query.stderr
    [result] = [json.loads(line) for line in query.stdout.splitlines()]
    assert result["outcome"] == "PASSED" and result["data"]["event_id"] == "deploy-42"
    assert result["data"]["presets"] == ["two_names", "sequential"]
    assert result["ref_url"].endswith("report/index.html") and len(result["groups"]) == 1
    cases = run_cli(
        "run_toolbox.py",
        "results",
        "query",
        "--data",
        "event_id=deploy-42",
        "--testcase",
        "example.*",
        env=env,
    )
    names = {json.loads(line)["testcase"]["name"] for line in cases.stdout.splitlines()}
    assert "example.steps.000__test" in names and len(names) >= 2


def test_a_failing_run_fails_fire_and_is_a_failed_result(tmp_path):
    rule = [
        {
            "when": {"type": "t"},
            "do": [{"project": "example", "step": "test", "presets": ["broken", "sequential"]}],
        }
    ]
    env = {
        "BOSUN_QUEUE_STORE": str(tmp_path / "queue.sqlite"),
        "BOSUN_RESULTS_STORE": str(tmp_path / "results.sqlite"),
        "ARTIFACT_DIR": str(tmp_path / "art"),
    }
    fired = run_cli(
        "run_toolbox.py",
        "trigger",
        "fire",
        "--rules",
        write(tmp_path / "r.yaml", rule),
        "--event",
        write(tmp_path / "e.yaml", {"type": "t"}),
        env=env,
    )
    assert fired.returncode == 1, fired.stderr
    [line] = error_lines(fired.stderr)
    assert "1 of 1 run(s) did not succeed: run 1 example test failed" in line
    failed = run_cli("run_toolbox.py", "results", "query", "--outcome", "FAILED", env=env)
    names = {json.loads(line)["testcase"]["name"] for line in failed.stdout.splitlines()}
    assert "bosun.example.test" in names and any("greet" in n for n in names)
    bad = run_cli(
        "run_toolbox.py", "results", "query", "--outcome", "MAYBE", "--since", "x", env=env
    )
    assert bad.returncode == 2 and len(error_lines(bad.stderr)) == 1


def test_results_store_queries(tmp_path):
    from library.results.store import Group, Result, ResultsStore, parse_when

    store = ResultsStore(tmp_path / "r.sqlite")
    t0 = int(time.time() * 1e6) - 3600 * 1_000_000
    for i in range(6):
        group = Group(uuid=f"g{i}", description=f"run {i}", project="p", presets=[])
        outcome = "FAILED" if i % 3 == 2 else "PASSED"
        store.record_group(
            group,
            [
                Result("p.run", outcome, data={"project": "p", "i": i, "ref": f"pr-{i % 2}"}),
                Result("p.other", "INFO", data={"project": "p"}),
            ],
            submit_time=t0 + i * 60_000_000,
        )
    latest = store.query(latest=True)
    assert {r["testcase"]["name"]: r["data"].get("i") for r in latest} == {
        "p.run": 5,
        "p.other": None,
    }
    assert [r["data"]["i"] for r in store.query(testcase="p.run", outcome=["FAILED"])] == [5, 2]
    window = store.query(testcase="p.run", since=t0 + 60_000_000, until=t0 + 240_000_000)
    assert [r["data"]["i"] for r in window] == [3, 2, 1]
    assert [r["data"]["i"] for r in store.query(data={"ref": "pr-1"})] == [5, 3, 1]
    latest_pr0 = store.query(latest=True, data={"ref": "pr-0"})
    assert [(r["testcase"]["name"], r["data"]["i"]) for r in latest_pr0] == [("p.run", 4)]
    assert store.query(testcase="p.*", limit=3)[0]["testcase"]["name"] in ("p.run", "p.other")
    # Recording a group again replaces its results, and latest follows.
    store.record_group(
        Group(uuid="g5", description="again"), [Result("p.run", "PASSED")], submit_time=t0
    )
    assert store.query(latest=True, testcase="p.run")[0]["data"]["i"] == 4
    assert abs(parse_when("1h") - t0) < 60_000_000
    with pytest.raises(UserError, match="--since 'yesterday'"):
        parse_when("yesterday")
    store.close()


def test_cancel_a_queued_and_a_running_run(tmp_path):
    """A queued run is cancelled at once and never runs; a running one has its process
    group ended by its executor, from a cancel asked in another connection (the CLI's)."""
    import asyncio

    from library.queue.executor import Executor
    from library.queue.store import QueueStore

    ruleset = rules.parse(
        [
            {
                "when": {"type": "slow"},
                "do": [
                    {
                        "project": "example",
                        "step": "test",
                        "presets": ["sequential"],
                        "vars": {"tests.example.pause": 60, "tests.example.names": ["alpha"]},
                    }
                ],
            }
        ],
        "r",
    )
    store = QueueStore(tmp_path / "q.sqlite")
    queued = [
        store.enqueue(
            ruleset.match(events.from_data({"type": "slow", "id": f"s{i}"}, "e")), "service"
        )[0][0]
        for i in range(2)
    ]
    env = {"BOSUN_QUEUE_STORE": str(tmp_path / "q.sqlite")}
    assert run_cli("run_toolbox.py", "trigger", "cancel", queued[1].id, env=env).returncode == 0
    executor = Executor(store, tmp_path / "runs", concurrency=2, poll_s=0.1, grace_s=10)

    async def go():
        executor.start()
        deadline = time.monotonic() + 60
        while store.get(queued[0].id).pid is None:
            assert time.monotonic() < deadline, "the run did not start"
            await asyncio.sleep(0.1)
        began = time.monotonic()
        cancel = await asyncio.to_thread(
            run_cli, "run_toolbox.py", "trigger", "cancel", queued[0].id, env=env
        )
        assert cancel.returncode == 0, cancel.stderr
        while store.get(queued[0].id).state == "running":
            assert time.monotonic() - began < 30, "the cancel was not acted on"
            await asyncio.sleep(0.1)
        await executor.stop()
        return time.monotonic() - began

    took = asyncio.run(go())
    first, second = store.get(queued[0].id), store.get(queued[1].id)
    assert first.state == "cancelled" and took < 30 and first.exit_code != 0
    assert any("cancelled by" in note for note in first.notes)
    assert second.state == "cancelled" and second.started is None and second.attempts == 0
    again = run_cli("run_toolbox.py", "trigger", "cancel", queued[0].id, env=env)
    assert again.returncode == 2 and "already cancelled" in again.stderr
    store.close()


def test_service_refuses_bad_rules_and_secret_before_starting(tmp_path):
    bad = write(tmp_path / "rules.yaml", [{"when": {}, "do": [{"project": "nope", "step": "x"}]}])
    env = {"ARTIFACT_DIR": str(tmp_path / "art")}
    common = (
        "run_toolbox.py",
        "service",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        tmp_path / "state",
    )
    done = run_cli(*common, "--rules", bad, env=env, timeout=60)
    assert done.returncode == 2
    [line] = error_lines(done.stderr)
    assert "rules.yaml: rule 1 do[0]: unknown project 'nope'" in line
    done = run_cli(*common, "--github-secret-file", tmp_path / "none", env=env, timeout=60)
    assert done.returncode == 2
    [line] = error_lines(done.stderr)
    assert "none" in line and "No such file" in line
    assert "Traceback" not in done.stderr


def test_check_runs_with_a_github_app_installation_token(tmp_path):
    """A GitHub App's JWT is traded for an installation token once, which the check-run
    calls then carry (GitHub's documented exchange, on the local stand-in for its API)."""
    import asyncio

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from library.service.settings import parse_settings
    from tests.support.github import FakeGitHub

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    (tmp_path / "app.pem").write_text(pem)
    with FakeGitHub(app_id=1234, public_key=public) as github:
        settings = parse_settings(
            {
                "triggers": {
                    "github": {
                        "api_url": github.url,
                        "app_id": 1234,
                        "private_key_file": str(tmp_path / "app.pem"),
                    }
                }
            },
            "service",
        )
        client = settings.triggers.github.check_runs()

        async def go():
            check = await client.create("org/nb", "c" * 40)
            await client.complete("org/nb", check, "success", "ok", "all green", [])
            return check

        check_id = asyncio.run(go())
    paths = [(c["method"], c["path"]) for c in github.calls]
    assert paths == [
        ("GET", "/repos/org/nb/installation"),
        ("POST", "/app/installations/42/access_tokens"),
        ("POST", "/repos/org/nb/check-runs"),
        ("PATCH", f"/repos/org/nb/check-runs/{check_id}"),
    ]
    assert github.calls[2]["auth"] == github.calls[3]["auth"] == "Bearer ghs_installation_1"
    with pytest.raises(UserError, match="both app_id and private_key_file"):
        parse_settings({"triggers": {"github": {"app_id": 1}}}, "service")
    with pytest.raises(UserError, match="not both"):
        parse_settings(
            {"triggers": {"github": {"app_id": 1, "private_key_file": "k", "token_file": "t"}}},
            "service",
        )


def test_check_reporter_success_and_many_annotations(tmp_path):
    """A green run completes its check `success` without annotations; 60 failing notebooks
    are sent 50 and 10 (GitHub's limit per request), the last request completing the check."""
    import asyncio

    from library.queue.store import QueueStore
    from library.triggers.checks import CheckReporter
    from library.triggers.github import CheckRuns, StaticToken
    from tests.support.github import FakeGitHub

    ruleset = rules.parse(
        [
            {
                "when": {"type": "github.pull_request"},
                "do": [{"project": "example", "step": "prepare", "report": "github_check"}],
            }
        ],
        "r",
    )
    store = QueueStore(tmp_path / "q.sqlite")
    runs = []
    for number, failing in ((1, 0), (2, 60)):
        event = events.from_data(
            {
                "type": "github.pull_request",
                "id": f"pr{number}",
                "repository": {"full_name": "org/nb"},
                "pull_request": {"number": number, "head": {"sha": f"{number}" * 40}},
            },
            "e",
        )
        [(run, _)] = store.enqueue(ruleset.match(event), "service")
        run = store.claim("service", "me", tmp_path / "runs")
        Path(run.artifact_dir).mkdir(parents=True)
        outcomes = [
            {
                "notebook": f"nb{i}.ipynb",
                "ok": i >= failing,
                "cell": 3,
                "error_class": "AssertionError",
                "error": f"boom {i}",
            }
            for i in range(62)
        ]
        (Path(run.artifact_dir) / "notebooks.json").write_text(json.dumps(outcomes))
        runs.append((run, failing))
    with FakeGitHub("tok") as github:
        reporter = CheckReporter(CheckRuns(github.url, StaticToken("tok")), store)

        async def go():
            for run, failing in runs:
                await reporter.on_start(store.get(run.id))
                store.finish(
                    run.id, "failed" if failing else "succeeded", 1 if failing else 0, None
                )
                await reporter.on_finish(store.get(run.id))

        asyncio.run(go())
    patches = [c["body"] for c in github.calls if c["method"] == "PATCH"]
    green, first, last = patches
    assert green["conclusion"] == "success" and green["output"]["annotations"] == []
    assert green["output"]["title"] == "62 notebook(s) ran green"
    assert len(first["output"]["annotations"]) == 50 and "conclusion" not in first
    assert len(last["output"]["annotations"]) == 10 and last["conclusion"] == "failure"
    assert last["output"]["title"] == "60 of 62 notebook(s) failed"
    store.close()


def test_runs_on_a_dask_cluster(tmp_path):
    """With a Dask scheduler the runs start on its workers (here a local cluster): the same
    ci/run, dirs and results; a cancel reaches the worker through the run's dir."""
    import asyncio

    from distributed import LocalCluster

    from library.queue.executor import Executor
    from library.queue.store import QueueStore

    ruleset = rules.parse(
        [
            {"when": {"type": "quick"}, "do": [{"project": "example", "step": "prepare"}]},
            {
                "when": {"type": "slow"},
                "do": [
                    {
                        "project": "example",
                        "step": "test",
                        "presets": ["sequential"],
                        "vars": {"tests.example.pause": 60, "tests.example.names": ["alpha"]},
                    }
                ],
            },
        ],
        "r",
    )
    store = QueueStore(tmp_path / "q.sqlite")
    [(quick, _)] = store.enqueue(ruleset.match(events.from_data({"type": "quick"}, "e")), "service")
    [(slow, _)] = store.enqueue(ruleset.match(events.from_data({"type": "slow"}, "e")), "service")
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        executor = Executor(
            store,
            tmp_path / "runs",
            concurrency=2,
            poll_s=0.1,
            grace_s=10,
            results_url=str(tmp_path / "results.sqlite"),
            dask_scheduler=cluster.scheduler_address,
        )

        async def go():
            executor.start()
            deadline = time.monotonic() + 120
            while (
                store.get(quick.id).state != "succeeded"
                or not (Path(store.get(slow.id).artifact_dir or tmp_path) / "worker.json").is_file()
            ):
                assert time.monotonic() < deadline, store.get(quick.id)
                await asyncio.sleep(0.2)
            store.cancel(slow.id, "test")
            while store.get(slow.id).state == "running":
                assert time.monotonic() < deadline, "the cancel did not reach the worker"
                await asyncio.sleep(0.2)
            await executor.stop()

        asyncio.run(go())
    done, cancelled = store.get(quick.id), store.get(slow.id)
    assert done.exit_code == 0 and done.pid is None
    assert (Path(done.artifact_dir) / "FINISHED").is_file()
    assert json.loads((Path(done.artifact_dir) / "worker.json").read_text())["pid"] > 0
    assert cancelled.state == "cancelled" and cancelled.exit_code != 0
    from library.results.store import ResultsStore

    [result] = ResultsStore(tmp_path / "results.sqlite").query(testcase="bosun.example.prepare")
    assert result["outcome"] == "PASSED"
    store.close()
