"""The triggers on a real `service run` process, over HTTP: GitHub webhooks (signatures,
ping, duplicate deliveries), generic events with scoped tokens, the run queue across a
SIGKILL, mobu's two GitHub apps (a push refreshes the right notebook flock; a pull request
runs its changed notebooks and reports a check run) and results queries over the API.

GitHub itself cannot be installed here: its check-run API is `tests.support.github.FakeGitHub`,
a local server recording the calls GitHub's documented API would receive. The notebook
repository is a real bare git repository with real commits."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.service import ServiceProcess, bearer, wait_for, write_auth

pytestmark = pytest.mark.integration
SECRET = "webhook-s3cret"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(svc, event: str, payload: dict, delivery: str, signature: str | None = "good"):
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    if signature == "good":
        headers["X-Hub-Signature-256"] = sign(body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(svc.url + "/github/webhook", content=body, headers=headers, timeout=60)


def runs(svc) -> list[dict]:
    return httpx.get(svc.url + "/runs", timeout=30).json()["runs"]


GREET_RULES = [
    {
        "name": "greet",
        "when": {"type": ["deploy.finished", "github.push"]},
        "do": [
            {
                "project": "example",
                "step": "test",
                "presets": ["two_names", "sequential"],
                "vars": {"tests.example.names": ["alpha"]},
            }
        ],
    },
    {
        "name": "slow greet",
        "when": {"type": "slow"},
        "do": [
            {
                "project": "example",
                "step": "test",
                "presets": ["sequential"],
                "vars": {"tests.example.names": ["alpha"], "tests.example.pause": 4},
                "vars_from": {"tests.example.greeting": "greeting"},
            }
        ],
    },
]


@pytest.fixture
def start(tmp_path):
    started: list[ServiceProcess] = []

    def go(rules=GREET_RULES, triggers: dict | None = None, **kw) -> ServiceProcess:
        rules_path = tmp_path / "rules.yaml"
        if rules is not None and not rules_path.exists():
            rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
        secret = tmp_path / "secret"
        secret.write_text(SECRET + "\n")
        config = tmp_path / "service.yaml"
        section = {
            "flush_interval": "1s",
            "triggers": {
                "results_store": str(tmp_path / "results.sqlite"),
                **(triggers or {}),
            },
        }
        config.write_text(yaml.safe_dump({"service": section}))
        args = [
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path / "state"),
            "--auth-file",
            str(write_auth(tmp_path / "auth.yaml")),
            "--github-secret-file",
            str(secret),
        ]
        if rules is not None:
            args += ["--rules", str(rules_path)]
        proc = ServiceProcess(tmp_path, *args, **kw)
        started.append(proc)
        return proc.wait_ready()

    yield go
    for proc in started:
        proc.stop()


def test_webhook_signatures_ping_and_duplicate_deliveries(start):
    svc = start()
    push = {
        "ref": "refs/heads/main",
        "after": "a" * 40,
        "repository": {"full_name": "org/repo", "clone_url": "https://example.org/r.git"},
    }
    assert deliver(svc, "ping", {"zen": "Keep it logically awesome."}, "p1").json()["msg"] == "pong"
    for bad in (None, "sha256=" + "0" * 64, sign(json.dumps(push).encode(), "other"), "md5=x"):
        answer = deliver(svc, "push", push, "d-bad", signature=bad)
        assert answer.status_code == 401, answer.text
        assert answer.json()["detail"][0]["type"] == "bad_signature"
    assert runs(svc) == []  # nothing recorded, nothing queued

    first = deliver(svc, "push", push, "d-1")
    assert first.status_code == 202, first.text
    assert first.json()["duplicate"] is False and len(first.json()["runs"]) == 1
    again = deliver(svc, "push", push, "d-1")
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert [r["new"] for r in again.json()["runs"]] == [False]
    other = deliver(svc, "push", push, "d-2")  # another delivery: another event
    assert other.json()["duplicate"] is False
    assert len(runs(svc)) == 2
    done = wait_for(
        lambda: all(r["state"] == "succeeded" for r in runs(svc)) and runs(svc), 120, "the runs"
    )
    run = done[-1]
    assert run["data"]["repository"] == "org/repo" and run["data"]["git_sha"] == "a" * 40
    shown = httpx.get(f"{svc.url}/runs/{run['id']}").json()
    assert shown["event"]["id"] == "github:d-1" and shown["event"]["type"] == "github.push"
    results = httpx.get(
        svc.url + "/results",
        params={"testcase": "bosun.example.test", "data": "repository=org/repo"},
    ).json()
    assert len(results["data"]) == 2 and {r["outcome"] for r in results["data"]} == {"PASSED"}
    latest = httpx.get(svc.url + "/results", params={"latest": "true"}).json()["data"]
    assert len({r["testcase"]["name"] for r in latest}) == len(latest)
    bad_payload = deliver(svc, "push", [], "d-3")
    assert bad_payload.status_code == 400 and "JSON object" in bad_payload.text
    no_delivery = httpx.post(
        svc.url + "/github/webhook", content=b"{}", headers={"X-Hub-Signature-256": sign(b"{}")}
    )
    assert no_delivery.status_code == 400


def test_generic_events_need_a_scope_and_bad_events_change_nothing(start):
    svc = start()
    event = {"type": "deploy.finished", "id": "argo-1", "app": "nublado"}
    assert httpx.post(svc.url + "/events", json=event).status_code == 401
    assert httpx.post(svc.url + "/events", json=event, headers=bearer("reader")).status_code == 403
    assert httpx.post(svc.url + "/events", json=event, headers=bearer("team")).status_code == 403
    assert runs(svc) == []
    for bad, status in (({"id": "x"}, 422), (["deploy"], 422)):
        answer = httpx.post(svc.url + "/events", json=bad, headers=bearer("admin"))
        assert answer.status_code == status, answer.text
    missing = httpx.post(
        svc.url + "/events", json={"type": "slow", "id": "s0"}, headers=bearer("admin")
    )
    assert missing.status_code == 422 and "does not have" in missing.json()["detail"][0]["msg"]
    assert runs(svc) == []
    ok = httpx.post(svc.url + "/events", json=event, headers=bearer("admin"))
    assert ok.status_code == 202 and ok.json()["runs"][0]["new"] is True
    assert httpx.post(svc.url + "/events", json=event, headers=bearer("admin")).json()["duplicate"]
    assert httpx.post(svc.url + "/runs/999/cancel", headers=bearer("admin")).status_code == 404
    assert httpx.get(svc.url + "/runs/999").status_code == 404
    assert httpx.get(svc.url + "/results", params={"outcome": "MAYBE"}).status_code == 422


def test_killed_service_accounts_for_every_run(start, tmp_path):
    """SIGKILL with one run running and two queued: after a restart the interrupted run is
    run again (its first attempt's dir kept, noted), the queued ones run, none is lost."""
    svc = start(triggers={"concurrency": 1})
    for number in range(3):
        answer = httpx.post(
            svc.url + "/events",
            json={"type": "slow", "id": f"slow-{number}", "greeting": f"hi {number}"},
            headers=bearer("admin"),
        )
        assert answer.status_code == 202, answer.text
    first = wait_for(
        lambda: [r for r in runs(svc) if r["state"] == "running" and r["pid"]], 60, "a run"
    )[0]
    assert sorted(r["state"] for r in runs(svc)) == ["queued", "queued", "running"]
    child = first["pid"]
    assert svc.stop(signal.SIGKILL) == -signal.SIGKILL
    # The run's process is told to end when its executor dies (it writes its records).
    wait_for(lambda: not Path(f"/proc/{child}").exists(), 60, "the orphaned run to end")

    svc = start(triggers={"concurrency": 1})
    done = wait_for(
        lambda: (lambda rs: rs if all(r["state"] == "succeeded" for r in rs) else None)(runs(svc)),
        180,
        "every run to finish",
    )
    assert len(done) == 3
    again = next(r for r in done if r["id"] == first["id"])
    assert again["attempts"] == 2 and "interrupted" in again["notes"][0]
    assert again["artifact_dir"].endswith("__attempt2")
    assert Path(first["artifact_dir"]).is_dir()  # the interrupted attempt's records are kept
    assert all(r["attempts"] == 1 for r in done if r["id"] != first["id"])
    for r in done:
        log = Path(r["artifact_dir"]) / "000__test" / "000__shell__run_argv__greet" / "run.log"
        assert f"hi {int(r['event_id'].split('-')[1])}, alpha" in log.read_text()


def test_pull_request_runs_changed_notebooks_and_reports_a_check(start, tmp_path):
    """One good and one broken changed notebook (and a broken one the change does not touch):
    a failing check run with exactly one annotation, on the PR's head commit."""
    from tests.integration.notebook_repos import change_repo, git
    from tests.support.github import FakeGitHub

    work = change_repo(tmp_path / "work", unchanged="untouched.ipynb", bad="broken.ipynb")
    bare = tmp_path / "notebooks.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    base = git(work, "rev-parse", "main").strip()
    head = git(work, "rev-parse", "change").strip()
    token = tmp_path / "gh-token"
    token.write_text("ghs_installation_token\n")
    rules = Path(__file__).resolve().parents[2] / "projects/notebook_ci/testing/triggers.yaml"
    (tmp_path / "rules.yaml").write_text(rules.read_text())
    with FakeGitHub("ghs_installation_token") as github:
        svc = start(
            rules=None,
            triggers={
                "rules": str(tmp_path / "rules.yaml"),
                "github": {"api_url": github.url, "token_file": str(token)},
            },
        )
        payload = {
            "action": "opened",
            "number": 7,
            "pull_request": {
                "number": 7,
                "head": {"sha": head, "ref": "change", "repo": {"clone_url": f"file://{bare}"}},
                "base": {"sha": base, "ref": "main"},
            },
            "repository": {"full_name": "org/notebooks", "clone_url": f"file://{bare}"},
        }
        closed = deliver(svc, "pull_request", {**payload, "action": "closed"}, "pr-closed")
        assert closed.status_code == 202 and closed.json()["runs"] == []
        answer = deliver(svc, "pull_request", payload, "pr-opened")
        assert answer.status_code == 202, answer.text
        [queued] = answer.json()["runs"]
        run = wait_for(
            lambda: (lambda r: r if r["state"] not in ("queued", "running") else None)(
                httpx.get(f"{svc.url}/runs/{queued['id']}").json()
            ),
            240,
            "the notebook run",
        )
        assert run["state"] == "failed", run
        wait_for(lambda: len(github.calls) >= 2, 30, "the check run's completion")
        create, complete = github.calls[:2]
    assert create["method"] == "POST" and create["path"] == "/repos/org/notebooks/check-runs"
    assert create["body"]["head_sha"] == head and create["body"]["status"] == "in_progress"
    assert create["auth"] == "Bearer ghs_installation_token"
    assert complete["method"] == "PATCH"
    assert complete["path"] == f"/repos/org/notebooks/check-runs/{run['data']['check_run_id']}"
    body = complete["body"]
    assert body["status"] == "completed" and body["conclusion"] == "failure"
    [annotation] = body["output"]["annotations"]
    assert annotation["path"] == "broken.ipynb" and annotation["annotation_level"] == "failure"
    assert "x is not two" in annotation["message"] and "cell" in annotation["title"]
    assert body["output"]["title"] == "1 of 2 notebook(s) failed"
    assert "broken.ipynb" in body["output"]["summary"]
    results = httpx.get(svc.url + "/results", params={"testcase": "notebook_ci.run.*"}).json()
    outcomes = {r["testcase"]["name"]: r["outcome"] for r in results["data"]}
    assert outcomes == {
        "notebook_ci.run.broken.ipynb run": "FAILED",
        "notebook_ci.run.good.ipynb run": "PASSED",
    }
    assert results["data"][0]["data"]["git_sha"] == head
    assert results["data"][0]["data"]["pull_request"] == 7


def test_push_refreshes_the_notebook_flock_on_that_branch_only(start, sandbox, tmp_path):
    from tests.integration.notebook_repos import git, write_notebook
    from tests.integration.test_scale import running_labs

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.org")
    git(repo, "config", "user.name", "ci")
    write_notebook(repo / "first.ipynb", "print('first')")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    git(repo, "branch", "other")
    prefix = "bot-trgrefresh"

    def notebook_flock(name: str, ref: str) -> dict:
        return {
            "name": name,
            "count": 1,
            "user_spec": {"username_prefix": f"{prefix}{name[-1]}"},
            "scopes": ["exec:notebook"],
            "business": {
                "type": "NotebookRunnerInfinite",
                "options": {
                    "repo_url": f"file://{repo}/",
                    "repo_ref": ref,
                    "execution_idle_time": "1s",
                    "spawn_timeout": "120s",
                    "delete_timeout": "60s",
                },
            },
        }

    svc = start(rules=[])
    admin = bearer("admin")
    for flock in (notebook_flock("nb-a", "main"), notebook_flock("nb-b", "other")):
        assert httpx.put(svc.url + "/flocks", json=flock, headers=admin).status_code == 201
    empty = {
        "name": "idle",
        "count": 1,
        "user_spec": {"username_prefix": "bot-trgidle"},
        "scopes": [],
        "business": {"type": "EmptyLoop", "options": {"idle_time": "1s"}},
    }
    assert httpx.put(svc.url + "/flocks", json=empty, headers=admin).status_code == 201
    push = {
        "ref": "refs/heads/main",
        "after": "b" * 40,
        "repository": {"full_name": "org/nb", "clone_url": f"file://{repo}.git"},
    }
    assert deliver(svc, "push", push, "push-bad", signature="sha256=" + "1" * 64).status_code == 401
    answer = deliver(svc, "push", push, "push-1")
    assert answer.status_code == 202, answer.text
    assert answer.json()["refreshed"] == ["nb-a"]
    assert deliver(svc, "push", push, "push-1").json()["refreshed"] == []  # a duplicate

    def log(flock: str, monkey: str) -> str:
        return httpx.get(f"{svc.url}/flocks/{flock}/monkeys/{monkey}/log").text

    assert "refresh requested" in log("nb-a", f"{prefix}a1")
    assert "refresh requested" not in log("nb-b", f"{prefix}b1")
    assert "refresh requested" not in log("idle", "bot-trgidle1")
    assert svc.stop() == 0
    assert running_labs(sandbox, prefix) == []


def test_sigterm_requeues_the_running_run_for_the_next_start(start, tmp_path):
    svc = start(triggers={"concurrency": 1})
    answer = httpx.post(
        svc.url + "/events",
        json={"type": "slow", "id": "term-1", "greeting": "hello"},
        headers=bearer("admin"),
    )
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["runs"][0]["id"]
    wait_for(lambda: httpx.get(f"{svc.url}/runs/{run_id}").json()["pid"], 60, "the run")
    assert svc.stop(signal.SIGTERM) == 0
    assert "ended by the stop, queued again" in svc.output()

    svc = start(triggers={"concurrency": 1})
    run = wait_for(
        lambda: (lambda r: r if r["state"] == "succeeded" else None)(
            httpx.get(f"{svc.url}/runs/{run_id}").json()
        ),
        120,
        "the run's second attempt",
    )
    assert run["attempts"] == 2
    assert run["notes"] == ["interrupted: the executor stopped while it ran (attempt 1)"]
