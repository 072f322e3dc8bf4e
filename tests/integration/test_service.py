"""`service run` as operators drive it: a real service process on a free port, over HTTP.

mobu's API route by route with mobu's JSON shapes (the expected bodies are those of mobu's
own handler tests, ``lsst-sqre/mobu`` ``tests/handlers/flock_test.py`` and
``solitary_test.py``), the auth matrix, persistence across a restart, pause and resume, bad
inputs, the client commands, and SIGTERM with labs running on the sandbox.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest
import yaml

from tests.helpers import REPO, error_lines, run_cli
from tests.support.service import TOKENS, ServiceProcess, bearer, wait_for, write_auth

pytestmark = pytest.mark.integration

MOBU_FLOCK = {
    "name": "test",
    "count": 1,
    "user_spec": {"username_prefix": "bot-mobu-testuser"},
    "scopes": ["exec:notebook"],
    "business": {"type": "EmptyLoop"},
}


def empty_flock(name: str, count: int = 2, idle: str = "100ms", prefix: str = "") -> dict:
    return {
        "name": name,
        "count": count,
        "user_spec": {"username_prefix": prefix or f"bot-mobu-{name.replace('_', '-')}"},
        "scopes": [],
        "business": {"type": "EmptyLoop", "options": {"idle_time": idle}},
    }


@pytest.fixture
def service(tmp_path):
    """A service with the three-token auth file; stopped (SIGTERM) at the end."""
    started = []

    def start(*args: str, auth: bool = True, state: Path | None = None, **kw) -> ServiceProcess:
        extra = ["--state-dir", str(state or tmp_path / "state")]
        if auth:
            extra += ["--auth-file", str(write_auth(tmp_path / "auth.yaml"))]
        proc = ServiceProcess(tmp_path, *extra, *args, **kw)
        started.append(proc)
        return proc.wait_ready()

    yield start
    for proc in started:
        proc.stop()


def client(svc: ServiceProcess, who: str | None = "admin") -> httpx.Client:
    return httpx.Client(
        base_url=svc.url, headers=bearer(who) if who else {}, timeout=120, follow_redirects=False
    )


def test_mobu_routes_and_shapes(service):
    svc = service()
    with client(svc) as c:
        assert c.get("/flocks").json() == []
        r = c.put("/flocks", json=MOBU_FLOCK)
        assert r.status_code == 201
        expected = {
            "name": "test",
            "config": MOBU_FLOCK,
            "monkeys": [
                {
                    "name": "bot-mobu-testuser1",
                    "business": {
                        "failure_count": 0,
                        "name": "EmptyLoop",
                        "refreshing": False,
                        "success_count": ANY,
                    },
                    "state": ANY,
                    "user": {
                        "scopes": ["exec:notebook"],
                        "token": "***",  # bosun never shows a token; mobu shows it
                        "username": "bot-mobu-testuser1",
                        "groups": [],
                    },
                }
            ],
        }
        assert r.json() == expected
        assert r.headers["Location"] == f"{svc.url}/flocks/test"
        wait_for(
            lambda: (
                c.get("/flocks/test/monkeys/bot-mobu-testuser1").json()["business"]["success_count"]
                > 0
            ),
            what="one execution",
        )
        assert c.get("/flocks").json() == ["test"]
        r = c.get("/flocks/test")
        assert r.status_code == 200 and r.json() == expected
        assert r.json()["monkeys"][0]["state"] == "RUNNING"

        assert c.post("/flocks/test/refresh").status_code == 202
        expected["monkeys"][0]["business"]["refreshing"] = True
        assert c.get("/flocks/test/monkeys").json() == ["bot-mobu-testuser1"]
        r = c.get("/flocks/test/monkeys/bot-mobu-testuser1")
        assert r.status_code == 200 and r.json() == expected["monkeys"][0]

        r = c.get("/flocks/test/monkeys/bot-mobu-testuser1/log")
        assert r.status_code == 200
        assert "text/plain" in r.headers["Content-Type"]
        assert "test-bot-mobu-testuser1-" in r.headers["Content-Disposition"]
        assert "starting" in r.text and "refresh requested" in r.text

        summary = {
            "name": "test",
            "business": "EmptyLoop",
            "start_time": ANY,
            "monkey_count": 1,
            "success_count": ANY,
            "failure_count": 0,
        }
        r = c.get("/flocks/test/summary")
        assert r.status_code == 200 and r.json() == summary
        assert r.json()["success_count"] > 0 and r.json()["start_time"].endswith("+00:00")
        assert c.get("/summary").json() == {"flocks": [summary], "ci_manager": None}

        for method, path in (
            ("GET", "/flocks/other"),
            ("POST", "/flocks/other/refresh"),
            ("DELETE", "/flocks/other"),
            ("GET", "/flocks/other/monkeys"),
            ("GET", "/flocks/test/monkeys/bot-mobu-testuser2"),
            ("GET", "/flocks/test/monkeys/bot-mobu-testuser2/log"),
            ("POST", "/flocks/other/pause"),
            ("POST", "/flocks/other/resume"),
        ):
            r = c.request(method, path)
            assert r.status_code == 404, (method, path)
            assert r.json()["detail"][0]["type"] in ("flock_not_found", "monkey_not_found")

        # PUT of the same name replaces the flock (mobu's start_flock stops the old one).
        # A key mobu ignores is ignored, and named in a notice.
        r = c.put("/flocks", json={**MOBU_FLOCK, "count": 2, "restart": True})
        assert r.status_code == 201
        assert "ignored flock key(s) restart" in r.headers["X-Bosun-Notice"]
        assert "X-Bosun-Notice" not in c.put("/flocks", json=MOBU_FLOCK).headers
        r = c.put("/flocks", json={**MOBU_FLOCK, "count": 2})
        assert r.status_code == 201
        assert [m["name"] for m in r.json()["monkeys"]] == [
            "bot-mobu-testuser1",
            "bot-mobu-testuser2",
        ]
        assert c.get("/flocks").json() == ["test"]

        assert c.delete("/flocks/test").status_code == 204
        for path in ("/flocks/test", "/flocks/test/monkeys", "/flocks/test/monkeys/x/log"):
            assert c.get(path).status_code == 404
        assert c.get("/flocks").json() == []

        # A listed user keeps its UID, and a missing GID is the UID (mobu's test_user_list).
        users = [
            {"username": "bot-mobu-testuser", "uidnumber": 1000, "gidnumber": 1056, "groups": []},
            {"username": "bot-mobu-otheruser", "uidnumber": 60000},
        ]
        r = c.put("/flocks", json={**MOBU_FLOCK, "count": 2, "users": users, "user_spec": None})
        assert r.status_code == 201
        assert [m["user"] for m in r.json()["monkeys"]] == [
            {**users[0], "scopes": ["exec:notebook"], "token": "***"},
            {
                **users[1],
                "gidnumber": 60000,
                "groups": [],
                "scopes": ["exec:notebook"],
                "token": "***",
            },
        ]

        # Solitary: mobu's test_run.
        r = c.post(
            "/run",
            json={
                "user": {"username": "bot-mobu-solitary"},
                "scopes": ["exec:notebook"],
                "business": {"type": "EmptyLoop"},
            },
        )
        assert r.status_code == 200
        assert r.json() == {"success": True, "log": ANY}
        assert "Starting up..." in r.json()["log"] and "Shutting down..." in r.json()["log"]

        # The docs, and mobu's validation errors: 422 at the body with a value_error.
        spec = c.get("/openapi.json").json()
        assert "/mobu/flocks/{flock}/pause" in spec["paths"]
        assert "/mobu/run" in spec["paths"]
        assert c.get("/docs").status_code == 200 and c.get("/redoc").status_code == 200
        assert httpx.get(svc.base + "/docs").status_code == 307
        r = c.put("/flocks", json={**MOBU_FLOCK, "count": 2, "user_spec": None})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body"]
        assert r.json()["detail"][0]["type"] == "value_error"
        assert "users" in r.json()["detail"][0]["msg"]


def test_auth_matrix(service, tmp_path):
    svc = service()
    flock = {"team-a": empty_flock("team-a"), "other": empty_flock("other")}

    def status(who, method, path, body=None):
        headers = (
            {"Authorization": "Bearer wrong"} if who == "bad" else (bearer(who) if who else {})
        )
        return httpx.request(method, svc.url + path, json=body, headers=headers, timeout=60)

    # Reads: anonymous and every token; a wrong token is 401 even on a read.
    for who in (None, "reader", "team", "admin"):
        assert status(who, "GET", "/flocks").status_code == 200
        assert status(who, "GET", "/summary").status_code == 200
    assert status("bad", "GET", "/flocks").status_code == 401

    for name in ("team-a", "other"):
        for who, want in ((None, 401), ("bad", 401), ("reader", 403)):
            r = status(who, "PUT", "/flocks", flock[name])
            assert r.status_code == want, (who, name, r.text)
            if want == 401:
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert status("team", "PUT", "/flocks", flock["other"]).status_code == 403
    assert status(None, "GET", "/flocks").json() == []  # nothing was created by a refusal

    assert status("team", "PUT", "/flocks", flock["team-a"]).status_code == 201
    assert status("admin", "PUT", "/flocks", flock["other"]).status_code == 201
    for action, method, ok in (
        ("/pause", "POST", 200),
        ("/resume", "POST", 200),
        ("/refresh", "POST", 202),
    ):
        assert status("team", method, "/flocks/other" + action).status_code == 403
        assert status("reader", method, "/flocks/team-a" + action).status_code == 403
        assert status(None, method, "/flocks/team-a" + action).status_code == 401
        assert status("team", method, "/flocks/team-a" + action).status_code == ok
        assert status("admin", method, "/flocks/other" + action).status_code == ok
    assert status("team", "DELETE", "/flocks/other").status_code == 403
    # A solitary run mints a token for any user: admin only.
    run = {"user": {"username": "bot-mobu-solo"}, "scopes": [], "business": {"type": "EmptyLoop"}}
    assert status("team", "POST", "/run", run).status_code == 403
    assert status("admin", "POST", "/run", run).json()["success"] is True
    assert status("team", "DELETE", "/flocks/team-a").status_code == 204
    assert status(None, "GET", "/flocks").json() == ["other"]

    # Every change is logged with who made it.
    out = svc.output()
    assert "team: started flock team-a" in out
    assert "admin: started flock other" in out
    assert "team: pausing flock team-a" in out
    assert "team: deleting flock team-a" in out
    assert "admin: solitary run of EmptyLoop as bot-mobu-solo" in out
    for token in TOKENS.values():
        assert token not in out


def test_without_auth_file_reads_only(service, tmp_path):
    svc = service("--autostart", str(_flock_file(tmp_path, "auto")), auth=False)
    assert httpx.get(svc.url + "/flocks").json() == ["auto"]
    for headers in ({}, bearer("admin")):
        r = httpx.put(svc.url + "/flocks", json=empty_flock("x"), headers=headers)
        assert r.status_code == 403 and "auth file" in r.json()["detail"][0]["msg"]
        r = httpx.delete(svc.url + "/flocks/auto", headers=headers)
        assert r.status_code == 403
    assert httpx.get(svc.url + "/flocks").json() == ["auto"]


def _flock_file(directory: Path, name: str, **kw) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump([empty_flock(name, **kw)]))
    return path


def test_persistence_and_pause_across_restart(service, tmp_path):
    state = tmp_path / "state"
    auto = _flock_file(tmp_path, "auto")
    svc = service("--autostart", str(auto), state=state)
    with client(svc) as c:
        assert c.put("/flocks", json=empty_flock("api-one")).status_code == 201
        assert c.put("/flocks", json=empty_flock("api-two")).status_code == 201
        assert c.post("/flocks/api-two/pause").json()["paused"] is True
        assert c.post("/flocks/auto/pause").status_code == 200
    assert svc.stop() == 0
    assert "SIGTERM: stopping the service" in svc.output()
    assert list((state / "events").rglob("*.parquet"))

    again = service("--autostart", str(auto), state=state)
    with client(again) as c:
        assert c.get("/flocks").json() == ["api-one", "api-two", "auto"]
        summaries = {s["name"]: s for s in c.get("/summary").json()["flocks"]}
        assert summaries["api-two"]["paused"] is True
        assert summaries["auto"]["paused"] is True  # a maintenance pause outlives a restart
        assert "paused" not in summaries["api-one"]
        wait_for(
            lambda: c.get("/flocks/api-one/summary").json()["success_count"] > 0,
            what="restored flock running",
        )
        assert c.delete("/flocks/api-one").status_code == 204
    assert again.stop() == 0
    saved = json.loads((state / "flocks.json").read_text())
    assert sorted(saved["flocks"]) == ["api-two"]
    assert saved["flocks"]["api-two"]["created_by"] == "admin"


def test_killed_service_loses_at_most_the_flush_interval(service, tmp_path):
    """A SIGKILL (no shutdown at all) still leaves the events up to the last flush."""
    from library.events import read_events

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"service": {"flush_interval": "1s"}}))
    svc = service("--config", str(config))
    with client(svc) as c:
        assert c.put("/flocks", json=empty_flock("busy", idle="50ms")).status_code == 201
        time.sleep(3.5)
        before = c.get("/flocks/busy/summary").json()["success_count"]
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait(30)
    time.sleep(0.5)  # a write handed to the writer thread just before the kill may be lost
    table = read_events(tmp_path / "state" / "events")
    loops = sum(1 for op in table.column("operation").to_pylist() if op == "empty_loop")
    # One interval (1 s) of 2 monkeys x 20 executions per second, plus slack for the write.
    assert loops >= before - 2 * 20 * 2, (loops, before)


def test_pause_and_resume(service):
    svc = service()
    with client(svc) as c:
        assert c.put("/flocks", json=empty_flock("steady")).status_code == 201
        wait_for(lambda: c.get("/flocks/steady/summary").json()["success_count"] > 4)
        for labs in ("release", "keep"):
            r = c.post("/flocks/steady/pause", params={"labs": labs})
            assert r.status_code == 200 and r.json()["paused"] is True
            time.sleep(0.5)  # a monkey under way finishes its execution
            first = c.get("/flocks/steady/summary").json()["success_count"]
            time.sleep(1.0)
            assert c.get("/flocks/steady/summary").json()["success_count"] == first
            monkeys = c.get("/flocks/steady").json()["monkeys"]
            assert {m["state"] for m in monkeys} == {"PAUSED"}
            assert c.get("/summary").json()["flocks"][0]["paused"] is True
            assert c.post("/flocks/steady/pause").status_code == 200  # twice is harmless
            r = c.post("/flocks/steady/resume")
            assert r.status_code == 200 and "paused" not in r.json()
            wait_for(
                lambda first=first: (
                    c.get("/flocks/steady/summary").json()["success_count"] > first + 2
                ),
                what=f"running again after a pause ({labs})",
            )
            assert {m["state"] for m in c.get("/flocks/steady").json()["monkeys"]} == {"RUNNING"}
        log = c.get("/flocks/steady/monkeys/bot-mobu-steady1/log").text
        assert "paused (labs released)" in log and "paused (labs kept)" in log


def test_bad_inputs_are_4xx_and_change_nothing(service, tmp_path):
    svc = service()
    with client(svc) as c:
        assert c.put("/flocks", json=empty_flock("keep")).status_code == 201
    state_file = tmp_path / "state" / "flocks.json"
    saved = state_file.read_text()
    good = empty_flock("new")
    cases = [
        ("malformed JSON", "PUT", "/flocks", b'{"name": "new", "count": ', 422, "json_invalid"),
        ("not an object", "PUT", "/flocks", b"[1, 2]", 422, None),
        ("wrong type", "PUT", "/flocks", {**good, "count": "many"}, 422, ["body", "count"]),
        ("negative count", "PUT", "/flocks", {**good, "count": -1}, 422, ["body", "count"]),
        (
            "unknown option",
            "PUT",
            "/flocks",
            {**good, "business": {"type": "EmptyLoop", "options": {"idle_tme": 1}}},
            422,
            "idle_tme",
        ),
        (
            "unknown business key",
            "PUT",
            "/flocks",
            {**good, "business": {"type": "EmptyLoop", "retsart": True}},
            422,
            ["body", "business", "retsart"],
        ),
        ("unknown business", "PUT", "/flocks", {**good, "business": {"type": "Nope"}}, 422, None),
        (
            "not a bot user",
            "PUT",
            "/flocks",
            {**good, "user_spec": {"username_prefix": "alice"}},
            422,
            "bot-",
        ),
        (
            "user name the platform refuses",
            "PUT",
            "/flocks",
            {**good, "user_spec": {"username_prefix": "bot-X/../"}},
            422,
            "valid platform user name",
        ),
        ("too many monkeys", "PUT", "/flocks", {**good, "count": 100_001}, 422, ["body", "count"]),
        ("huge body", "PUT", "/flocks", b"{" + b" " * (2 << 20) + b"}", 413, "body_too_large"),
        ("unknown flock", "DELETE", "/flocks/nope", None, 404, "flock_not_found"),
        ("unknown flock pause", "POST", "/flocks/nope/pause", None, 404, "flock_not_found"),
        ("bad pause mode", "POST", "/flocks/keep/pause?labs=maybe", None, 422, None),
        ("unknown monkey", "GET", "/flocks/keep/monkeys/bot-nobody", None, 404, "monkey_not"),
        ("solitary unknown field", "POST", "/run", {"user": {}, "scopes": []}, 422, None),
    ]
    for what, method, path, body, want, about in cases:
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = httpx.request(
            method,
            svc.url + path,
            headers={**bearer("admin"), "Content-Type": "application/json"},
            timeout=30,
            **{k: v for k, v in kwargs.items() if v is not None},
        )
        assert r.status_code == want, (what, r.status_code, r.text[:300])
        detail = r.json()["detail"]
        assert detail and detail[0]["msg"], what
        text = json.dumps(detail)
        if isinstance(about, list):
            assert any(d.get("loc") == about for d in detail), (what, text)
        elif about:
            assert about in text, (what, text)
        assert httpx.get(svc.url + "/flocks").json() == ["keep"], what
        assert state_file.read_text() == saved, what
    assert svc.proc.poll() is None


def test_config_section_prefix_and_inline_autostart(tmp_path):
    flock_file = _flock_file(tmp_path, "from-file")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "service": {
                    "prefix": "/custom",
                    "state_dir": "state",
                    "autostart": [empty_flock("inline"), flock_file.name],
                }
            }
        )
    )
    svc = ServiceProcess(tmp_path, "--config", str(config), prefix="/custom").wait_ready()
    try:
        assert httpx.get(svc.url + "/flocks").json() == ["from-file", "inline"]
        assert httpx.get(svc.base + "/mobu/flocks").status_code == 404
    finally:
        assert svc.stop() == 0
    assert (tmp_path / "state" / "events").is_dir()  # relative to the config file


def test_bad_service_config_is_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"service": {"listn": "127.0.0.1:1"}}))
    proc = run_cli(
        REPO / "run_toolbox.py",
        "service",
        "run",
        "--config",
        str(config),
        env={"ARTIFACT_DIR": str(tmp_path / "a")},
    )
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"error: {config}: service.listn: Extra inputs are not permitted"
    ]
    bad_auth = tmp_path / "auth.yaml"
    bad_auth.write_text(
        yaml.safe_dump([{"name": "x", "token_sha256": "secret", "scopes": ["admin"]}])
    )
    proc = run_cli(
        REPO / "run_toolbox.py",
        "service",
        "run",
        "--auth-file",
        str(bad_auth),
        env={"ARTIFACT_DIR": str(tmp_path / "a")},
    )
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert "entry 1: token_sha256: expected 64 hex digits" in line


def test_client_commands(service, tmp_path):
    svc = service()
    token = tmp_path / "token"
    token.write_text(TOKENS["team"] + "\n")
    flocks = tmp_path / "flocks.yaml"
    flocks.write_text(yaml.safe_dump([empty_flock("team-cli", count=2)]))
    art = tmp_path / "client-artifacts"
    common = ["--url", svc.url, "--token-file", str(token)]

    def cli(*args):
        return run_cli(REPO / "run_toolbox.py", "service", *args, env={"ARTIFACT_DIR": str(art)})

    proc = cli("start", "--flocks", str(flocks), *common)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: httpx.get(svc.url + "/flocks/team-cli/summary").json()["success_count"] > 0)
    proc = cli("flocks", *common)
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["name"] == "team-cli"
    assert cli("pause", "team-cli", "--labs", "keep", *common).returncode == 0
    proc = cli("summary", "--name", "team-cli", *common)
    assert json.loads(proc.stdout)["paused"] is True
    assert cli("resume", "team-cli", *common).returncode == 0
    proc = cli("report", "team-cli", *common)
    assert proc.returncode == 0, proc.stderr
    (out,) = art.glob("*__service__report")
    data = json.loads((out / "flock.json").read_text())
    assert [m["name"] for m in data["monkeys"]] == ["bot-mobu-team-cli1", "bot-mobu-team-cli2"]
    assert "starting" in (out / "bot-mobu-team-cli1_log.txt").read_text()
    assert json.loads((out / "bot-mobu-team-cli2_stats.json").read_text())["name"] == (
        "bot-mobu-team-cli2"
    )
    assert TOKENS["team"] not in "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    proc = cli("stop", "other", *common)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"error: DELETE {svc.url}/flocks/other: 404: path.flock: Flock other not found"
    ]
    assert cli("stop", "team-cli", *common).returncode == 0
    assert httpx.get(svc.url + "/flocks").json() == []
    proc = cli("flocks", "--url", "http://127.0.0.1:9/mobu")
    assert proc.returncode == 1 and "no answer" in error_lines(proc.stderr)[0]


def test_sigterm_with_labs_running_deletes_them(service, sandbox, tmp_path):
    """Labs on the sandbox's hub: after SIGTERM the service exits and no server is left."""
    from tests.integration.test_scale import running_labs

    prefix = "bot-svcsig"
    svc = service()
    flock = {
        "name": "labs",
        "count": 2,
        "user_spec": {"username_prefix": prefix},
        "scopes": ["exec:notebook"],
        "business": {
            "type": "NubladoPythonLoop",
            "options": {
                "code": "print(6*7)",
                "execution_idle_time": "200ms",
                "max_executions": 1000,
                "spawn_timeout": "120s",
                "delete_timeout": "60s",
            },
        },
    }
    with client(svc) as c:
        assert c.put("/flocks", json=flock).status_code == 201, c.get("/flocks").text
        wait_for(
            lambda: len(running_labs(sandbox, prefix, ready_only=True)) == 2,
            timeout=180,
            what="two labs ready",
        )
        wait_for(
            lambda: c.get("/flocks/labs/summary").json()["success_count"] >= 2,
            timeout=60,
            what="code executed in the labs",
        )
    began = time.monotonic()
    assert svc.stop(signal.SIGTERM, timeout=150) == 0
    took = time.monotonic() - began
    assert running_labs(sandbox, prefix) == [], svc.output()[-2000:]
    assert "SIGTERM: stopping the service" in svc.output()
    print(f"SIGTERM to exit with 2 labs: {took:.1f} s")


def test_refresh_makes_notebook_runners_reread_their_repo(service, sandbox, tmp_path):
    """A notebook added to the repository after the flock started runs after a refresh."""
    from library.events import read_events
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
    prefix = "bot-svcrefresh"
    flock = {
        "name": "notebooks",
        "count": 1,
        "user_spec": {"username_prefix": prefix},
        "scopes": ["exec:notebook"],
        "business": {
            "type": "NotebookRunnerInfinite",
            "options": {
                "repo_url": f"file://{repo}",
                "repo_ref": "main",
                "execution_idle_time": "200ms",
                "spawn_timeout": "120s",
                "delete_timeout": "60s",
            },
        },
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"service": {"flush_interval": "1s"}}))
    svc = service("--config", str(config))
    with client(svc) as c:
        assert c.put("/flocks", json=flock).status_code == 201
        wait_for(
            lambda: c.get("/flocks/notebooks/summary").json()["success_count"] >= 1,
            timeout=180,
            what="the first notebook run",
        )
        write_notebook(repo / "second.ipynb", "print('second')")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "second")
        assert c.post("/flocks/notebooks/refresh").status_code == 202
        monkey = f"/flocks/notebooks/monkeys/{prefix}1"
        assert c.get(monkey).json()["business"]["refreshing"] is True
        wait_for(
            lambda: not c.get(monkey).json()["business"]["refreshing"],
            timeout=120,
            what="the refresh taken",
        )
        assert "refreshing: a fresh business" in c.get(monkey + "/log").text
        events = tmp_path / "state" / "events"

        def ran_second() -> bool:
            targets = (
                read_events(events).column("target").to_pylist()
                if any(events.rglob("*.parquet"))
                else []
            )
            return any("second.ipynb" in t for t in targets)

        wait_for(ran_second, timeout=180, what="the new notebook run")
    assert svc.stop() == 0
    assert running_labs(sandbox, prefix) == []


def test_monitor_project_runs_the_daily_checks(service, sandbox, tmp_path):
    """projects/monitor: the service from its config (the sandbox's daily flocks), then its CI
    step saving a report of every flock of the running service."""
    from tests.integration.test_scale import running_labs

    svc = service("--project", "monitor", "--preset", "sandbox", auth=False)
    assert httpx.get(svc.url + "/flocks").json() == ["heartbeat", "notebooks", "python", "tap"]

    def ran(name: str) -> bool:
        return httpx.get(f"{svc.url}/flocks/{name}/summary").json()["success_count"] > 0

    wait_for(lambda: ran("heartbeat") and ran("tap"), timeout=120, what="heartbeat and tap")
    art = tmp_path / "ci"
    proc = run_cli(
        REPO / "ci" / "run",
        "monitor",
        "test",
        "--var",
        f"service_url: {svc.url}",
        env={"ARTIFACT_DIR": str(art)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    reports = sorted(p.name for p in art.rglob("*__service__report*"))
    assert len(reports) == 4, reports
    assert svc.stop() == 0
    assert running_labs(sandbox, "bot-mobu-python") == []
    assert running_labs(sandbox, "bot-mobu-notebooks") == []


def test_pause_releases_or_keeps_the_labs(service, sandbox):
    """On the sandbox's hub: pause (release) deletes the lab, resume spawns it again, pause
    (keep) leaves it running while the counts stand still."""
    from tests.integration.test_scale import running_labs

    prefix = "bot-svcpause"
    svc = service()
    flock = {
        "name": "lab",
        "count": 1,
        "user_spec": {"username_prefix": prefix},
        "scopes": ["exec:notebook"],
        "business": {
            "type": "NubladoPythonLoop",
            "options": {
                "code": "print(6*7)",
                "execution_idle_time": "200ms",
                "max_executions": 1000,
                "spawn_timeout": "120s",
                "delete_timeout": "60s",
            },
        },
    }

    def lab_ready() -> bool:
        return running_labs(sandbox, prefix, ready_only=True) == [f"{prefix}1"]

    with client(svc) as c:
        assert c.put("/flocks", json=flock).status_code == 201
        wait_for(lab_ready, timeout=180, what="the lab ready")
        wait_for(lambda: c.get("/flocks/lab/summary").json()["success_count"] > 0, timeout=60)

        assert c.post("/flocks/lab/pause", params={"labs": "release"}).status_code == 200
        assert running_labs(sandbox, prefix) == []  # the answer waits for the deletion
        assert c.post("/flocks/lab/resume").status_code == 200
        wait_for(lab_ready, timeout=180, what="the lab spawned again")

        assert c.post("/flocks/lab/pause", params={"labs": "keep"}).status_code == 200
        time.sleep(1.0)  # the execution under way ends
        count = c.get("/flocks/lab/summary").json()["success_count"]
        time.sleep(2.0)
        assert c.get("/flocks/lab/summary").json()["success_count"] == count
        assert lab_ready()  # kept while paused
        assert c.post("/flocks/lab/resume").status_code == 200
        wait_for(
            lambda: c.get("/flocks/lab/summary").json()["success_count"] > count,
            timeout=60,
            what="executions in the kept lab",
        )
        assert c.delete("/flocks/lab").status_code == 204
    assert running_labs(sandbox, prefix) == []
