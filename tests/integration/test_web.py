"""The operators' web page of a real `service run` process, in Debian's headless Chromium
driven by Playwright: the overview shows a running flock whose numbers change; pausing from
the page pauses it in the API; read-only tokens see no enabled button; a run queued by an
event appears and finishes, with its steps, JUnit cases, files and results; no console
error and no failed request on any page; screenshots kept in the test's artifact dir."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
import yaml

from tests.support.browser import Watched, chromium, screenshot_dir
from tests.support.service import TOKENS, ServiceProcess, bearer, write_auth

pytestmark = pytest.mark.integration

RULES = [
    {
        "name": "greet",
        "when": {"type": "deploy.finished"},
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
        "when": {"type": "deploy.slow"},
        "do": [
            {
                "project": "example",
                "step": "test",
                "presets": ["sequential"],
                "vars": {"tests.example.names": ["alpha"], "tests.example.pause": 5},
            }
        ],
    },
]


def empty_flock(name: str, count: int = 3, idle: str = "100ms") -> dict:
    return {
        "name": name,
        "count": count,
        "user_spec": {"username_prefix": f"bot-web-{name}"},
        "scopes": [],
        "business": {"type": "EmptyLoop", "options": {"idle_time": idle}},
    }


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    rules = tmp / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES, sort_keys=False))
    config = tmp / "service.yaml"
    triggers = {"results_store": str(tmp / "results.sqlite"), "concurrency": 1}
    alert = {"name": "web", "flocks": "web-bad*", "min_success_pct": 90, "window": "30s"}
    alert["evaluate_every"] = "1s"
    section = {"flush_interval": "1s", "triggers": triggers, "alerts": [alert]}
    config.write_text(yaml.safe_dump({"service": section}))
    proc = ServiceProcess(
        tmp,
        "--config",
        str(config),
        "--state-dir",
        str(tmp / "state"),
        "--auth-file",
        str(write_auth(tmp / "auth.yaml")),
        "--rules",
        str(rules),
    )
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    yield ctx
    ctx.close()


def put_flock(svc, flock: dict, who: str = "admin") -> None:
    answer = httpx.put(svc.url + "/flocks", json=flock, headers=bearer(who), timeout=30)
    assert answer.status_code == 201, answer.text


def use_token(page, who: str) -> None:
    """Types the token into the page's token form, as an operator does."""
    page.fill("#token", TOKENS[who])
    page.click("#token-use")
    page.wait_for_function(
        "name => document.querySelector('#who').textContent.startsWith(name)", arg=who
    )


def executions(page, flock: str) -> int:
    text = page.inner_text(f'tr[data-flock="{flock}"] td.executions')
    return int(text.replace(",", ""))


def test_overview_shows_a_new_flock_and_its_numbers_change(svc, context, tmp_path):
    shots = screenshot_dir(tmp_path)
    watched = Watched.open(context)
    page = watched.page
    page.goto(svc.url + "/web")
    page.wait_for_selector("#updated:has-text('updated')")
    put_at = time.monotonic()
    put_flock(svc, empty_flock("web-live"))
    row = page.wait_for_selector('tr[data-flock="web-live"]', timeout=10_000)
    shown_s = time.monotonic() - put_at
    (shots.parent / "overview-new-flock.json").write_text(json.dumps({"shown_s": shown_s}))
    assert "EmptyLoop" not in row.inner_text()  # the row shows figures, not the config
    page.wait_for_function(
        """() => {
          const row = document.querySelector('tr[data-flock="web-live"]');
          return row && row.innerText.includes('running')
            && !row.querySelector('td.ops').innerText.includes('–');
        }""",
        timeout=20_000,
    )
    first = executions(page, "web-live")
    page.wait_for_function(
        f"""() => Number(document.querySelector('tr[data-flock="web-live"] td.executions')
            .innerText.replace(/,/g, '')) > {first}""",
        timeout=20_000,
    )
    assert executions(page, "web-live") > first
    assert "3 running" in page.inner_text('tr[data-flock="web-live"]')
    watched.shot(shots, "overview")
    # A phone's screen: the same page, readable without zooming out.
    phone = context.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = Watched.open(phone)
    small.page.goto(svc.url + "/web")
    small.page.wait_for_selector('tr[data-flock="web-live"]')
    width = small.page.evaluate("document.documentElement.scrollWidth")
    small.shot(shots, "overview-phone")
    phone.close()
    assert width <= 390, "the page is wider than a phone's screen (tables scroll inside)"
    # Offline: every asset and every poll from the service itself, nothing from elsewhere.
    assert watched.hosts() == {f"127.0.0.1:{svc.port}"}
    assert any(u.endswith("/web/static/uPlot.iife.min.js") for u in watched.urls)
    # The keyboard reaches the skip link first, then the sections.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert watched.problems == [] and small.problems == []


def test_pause_and_resume_from_the_flock_page(svc, context, tmp_path):
    shots = screenshot_dir(tmp_path)
    put_flock(svc, empty_flock("web-pause"))
    watched = Watched.open(context)
    page = watched.page
    page.goto(svc.url + "/web/flocks/web-pause")
    page.wait_for_selector("#flock-state .state-running", timeout=20_000)
    assert page.is_disabled("#act-pause"), "anonymous: no enabled button"
    use_token(page, "admin")
    assert TOKENS["admin"] not in page.url
    assert page.evaluate("sessionStorage.getItem('bosun-token')") == TOKENS["admin"]
    page.wait_for_selector("#act-pause:enabled")
    page.click("#act-pause")
    summary = httpx.get(svc.url + "/flocks/web-pause/summary", timeout=10).json()
    deadline = time.monotonic() + 20
    while not summary.get("paused") and time.monotonic() < deadline:
        time.sleep(0.2)
        summary = httpx.get(svc.url + "/flocks/web-pause/summary", timeout=10).json()
    assert summary.get("paused") is True
    page.wait_for_selector("#flock-state .state-paused")
    page.wait_for_selector("#act-resume:enabled")
    assert page.is_disabled("#act-pause")
    # Charts drew from the recorded events (flushed every second here).
    page.wait_for_function(
        "document.querySelector('#series-note').textContent.match(/^[1-9][\\d,]* events/)",
        timeout=30_000,
    )
    assert page.locator("#chart-rate canvas").count() == 1
    page.select_option("#monkey-filter", "PAUSED")
    page.wait_for_selector("#monkeys tbody tr:has-text('PAUSED')")
    page.click("#monkeys tbody button.link >> nth=0")
    page.wait_for_selector("#log-section:not([hidden])")
    assert "paused" in page.inner_text("#log")
    watched.shot(shots, "flock-paused")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)  # the charts follow their container's width
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    watched.shot(shots, "flock-phone")
    page.set_viewport_size({"width": 1300, "height": 900})
    page.click("#act-resume")
    page.wait_for_selector("#flock-state .state-running", timeout=20_000)
    assert "paused" not in httpx.get(svc.url + "/flocks/web-pause/summary", timeout=10).json()
    for window in ("1h", "7d"):
        page.select_option("#window", window)
        page.wait_for_function(
            f"document.querySelector('#series-note').textContent.includes('events in') && "
            f"document.querySelector('#window').value === '{window}'"
        )
    # Stop: confirmed, the flock is deleted and the page goes back to the overview.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#act-stop")
    page.wait_for_url(re.compile(r".*/web$"))
    assert httpx.get(svc.url + "/flocks/web-pause", timeout=10).status_code == 404
    assert watched.problems == []


def test_read_only_tokens_see_no_enabled_button(svc, context, tmp_path):
    shots = screenshot_dir(tmp_path)
    put_flock(svc, empty_flock("web-ro"))
    put_flock(svc, empty_flock("team-web"), who="team")
    watched = Watched.open(context)
    page = watched.page
    page.goto(svc.url + "/web/flocks/web-ro")
    page.wait_for_selector("#flock-state .state")
    use_token(page, "reader")
    page.wait_for_selector("#act-why:has-text('may change this flock')")
    buttons = ["#act-pause", "#act-resume", "#act-refresh", "#act-stop"]
    assert [b for b in buttons if page.is_enabled(b)] == []
    watched.shot(shots, "flock-read-only")
    # The team's token changes its own flocks only.
    use_token(page, "team")
    page.wait_for_selector("#flock-state .state-running", timeout=20_000)
    assert [b for b in buttons if page.is_enabled(b)] == []
    page.goto(svc.url + "/web/flocks/team-web")
    page.wait_for_selector("#act-pause:enabled", timeout=20_000)  # the token stayed in the tab
    assert page.is_enabled("#act-stop")
    assert watched.problems == []


def test_a_run_queued_by_an_event_appears_and_finishes(svc, context, tmp_path):
    shots = screenshot_dir(tmp_path)
    watched = Watched.open(context)
    page = watched.page
    page.goto(svc.url + "/web/runs")
    page.wait_for_selector("#runs tbody tr:not(:has-text('loading'))")
    use_token(page, "reader")
    answer = httpx.post(
        svc.url + "/events",
        json={"type": "deploy.finished", "id": "web-deploy-1"},
        headers=bearer("admin"),
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["runs"][0]["id"]
    row = page.wait_for_selector(f'tr[data-run="{run_id}"]', timeout=10_000)
    assert "example test" in row.inner_text()
    page.wait_for_selector(f'tr[data-run="{run_id}"][data-state="succeeded"]', timeout=180_000)
    assert page.locator(f'tr[data-run="{run_id}"] button.cancel').count() == 0
    watched.shot(shots, "runs")
    page.click(f'tr[data-run="{run_id}"] a')
    page.wait_for_selector("#steps tbody tr a")
    page.wait_for_selector("#cases tbody tr th")
    assert page.locator("#files a").count() > 3
    assert page.is_disabled("#run-cancel")
    watched.shot(shots, "run")
    # An artifact file opens from the page, and nothing outside the run's dir does.
    log_link = page.locator("#steps a:has-text('log')").first
    href = log_link.get_attribute("href")
    assert httpx.get(svc.base + href, timeout=10).status_code == 200
    escape = f"{svc.url}/web/runs/{run_id}/files/..%2F..%2Fauth.yaml"
    assert httpx.get(escape, timeout=10).status_code == 404
    # Its results are searchable, and a test case has its history.
    page.click("nav >> text=Results")
    page.fill("input[name=testcase]", "bosun.example*")
    page.click("#results-form button[type=submit]")
    page.wait_for_selector("#results tbody tr[data-outcome='PASSED']")
    page.click("#results tbody tr[data-outcome='PASSED'] th a")
    page.wait_for_selector("#strip li.outcome-passed")
    assert "1 of 1 passed" in page.inner_text("#strip-summary")
    # A JUnit case's history has its durations too.
    page.go_back()
    page.fill("input[name=testcase]", "example.steps*")
    page.click("#results-form button[type=submit]")
    page.click("#results tbody tr[data-outcome='PASSED'] th a")
    page.wait_for_selector("#strip li.outcome-passed")
    page.wait_for_function("document.querySelector('#chart-duration .u-legend').innerText")
    assert page.inner_text("#trend-note") == ""
    watched.shot(shots, "testcase")
    # The overview lists it among the latest runs.
    page.goto(svc.url + "/web")
    page.wait_for_selector(f'#latest-runs tr[data-run="{run_id}"][data-state="succeeded"]')
    assert watched.problems == []


def test_cancel_a_queued_run_from_the_page(svc, context):
    watched = Watched.open(context)
    page = watched.page
    page.goto(svc.url + "/web/runs")
    use_token(page, "admin")
    ids = []
    for n in range(3):  # one runs (5 s), the others wait in the queue (one at a time)
        answer = httpx.post(
            svc.url + "/events",
            json={"type": "deploy.slow", "id": f"web-cancel-{n}"},
            headers=bearer("admin"),
            timeout=30,
        )
        ids.extend(r["id"] for r in answer.json()["runs"])
    last = ids[-1]
    page.wait_for_selector(f'tr[data-run="{last}"][data-state="queued"] button.cancel:enabled')
    page.click(f'tr[data-run="{last}"] button.cancel')
    page.wait_for_selector(f'tr[data-run="{last}"][data-state="cancelled"]', timeout=10_000)
    assert httpx.get(f"{svc.url}/runs/{last}", timeout=10).json()["state"] == "cancelled"
    for run_id in ids[:-1]:
        httpx.post(f"{svc.url}/runs/{run_id}/cancel", headers=bearer("admin"), timeout=10)
    assert watched.problems == []


def test_a_service_that_needs_a_token_to_read(tmp_path, context):
    """anonymous_read off: the page loads (its shell holds no data) and asks for a token;
    its data and a run's files stay behind the token."""
    config = tmp_path / "service.yaml"
    config.write_text(yaml.safe_dump({"service": {"anonymous_read": False}}))
    proc = ServiceProcess(
        tmp_path,
        "--config",
        str(config),
        "--state-dir",
        str(tmp_path / "state"),
        "--auth-file",
        str(write_auth(tmp_path / "auth.yaml")),
    )
    try:
        # `/` needs a token here too: ready when the page's shell answers.
        deadline = time.monotonic() + 60
        while True:
            assert proc.proc.poll() is None, proc.output()
            try:
                if httpx.get(proc.url + "/web", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.2)
        put_flock(proc, empty_flock("web-closed", count=1))
        assert httpx.get(proc.url + "/web/api/overview", timeout=10).status_code == 401
        assert httpx.get(proc.url + "/web/runs/1/files/run.json", timeout=10).status_code == 401
        watched = Watched.open(context)
        page = watched.page
        page.goto(proc.url + "/web")
        page.wait_for_selector("#status:has-text('needs a token to read')")
        assert page.locator('tr[data-flock="web-closed"]').count() == 0
        use_token(page, "reader")
        page.wait_for_selector('tr[data-flock="web-closed"]', timeout=10_000)
        assert page.is_hidden("#status")
        assert watched.problems == []
    finally:
        proc.stop()


def test_a_failing_flock_fires_an_alert_and_shows_its_errors(svc, context, tmp_path):
    shots = screenshot_dir(tmp_path)
    bad = {
        "name": "web-bad",
        "count": 2,
        "user_spec": {"username_prefix": "bot-web-bad"},
        "scopes": [],
        "business": {
            "type": "HTTPLoop",
            "options": {
                "url": svc.base + "/no-such-page",  # the service itself answers 404
                "expect_status": [200],
                "idle_time": "200ms",
                "error_idle_time": "200ms",
            },
        },
    }
    put_flock(svc, bad)
    watched = Watched.open(context)
    page = watched.page
    page.goto(svc.url + "/web")
    page.wait_for_selector("#alerts li:has-text('web-bad')", timeout=30_000)
    assert "rule web" in page.inner_text("#alerts")
    # Its monkeys give up after their failure: the flock shows as failed.
    page.wait_for_selector('tr[data-flock="web-bad"] .state-failed', timeout=20_000)
    watched.shot(shots, "overview-alert")
    page.click('tr[data-flock="web-bad"] a')
    page.wait_for_selector("#monkeys td.error:has-text('404')", timeout=20_000)
    watched.shot(shots, "flock-failing")
    httpx.delete(svc.url + "/flocks/web-bad", headers=bearer("admin"), timeout=30)
    assert watched.problems == []
