"""What a monkey is doing now, and its per-execution log lines, as mobu's API shows them.

A real service process drives flocks against the sandbox's real services (DaCHS's TAP and SIA,
the hub's labs with the Nublado-shaped spawn form). The monkey JSON's per-business fields are
mobu's (``lsst-sqre/mobu`` ``models/business/``: ``TAPBusinessData.running_query``,
``SIABusinessData.running_query``, ``NotebookRunnerData.notebook`` / ``running_code`` and
``NubladoBusinessData.image``), left out while idle as mobu's routes leave out None; the log
lines are those mobu's businesses write.
"""

from __future__ import annotations

import pytest

from tests.integration.notebook_repos import write_notebook
from tests.integration.test_service import client, wait_for
from tests.support.service import ServiceProcess, write_auth

pytestmark = pytest.mark.integration

COMMON_KEYS = {"name", "failure_count", "success_count", "refreshing"}
SLOW_CELL = "import time\ntime.sleep(3)"
# A password in a URL: the cell's code and output reach the log masked.
SECRET_CELL = "url = 'https://bot:pa55-w0rd-Secret@example.org/data'\nprint(url)"


@pytest.fixture
def service(tmp_path):
    """A service with the three-token auth file; stopped (SIGTERM) at the end."""
    started: list[ServiceProcess] = []

    def start() -> ServiceProcess:
        auth = write_auth(tmp_path / "auth.yaml")
        proc = ServiceProcess(
            tmp_path, "--state-dir", str(tmp_path / "state"), "--auth-file", str(auth)
        )
        started.append(proc)
        return proc.wait_ready()

    yield start
    for proc in started:
        proc.stop()


def flock(name: str, prefix: str, business: dict) -> dict:
    return {
        "name": name,
        "count": 1,
        "user_spec": {"username_prefix": prefix},
        "scopes": ["exec:notebook"],
        "business": business,
    }


def test_tap_and_sia_monkeys_show_the_running_query_and_log_each_query(service, sandbox):
    svc = service()
    query = "SELECT TOP 5 objectId FROM sandbox.objects"
    tap = flock(
        "tap",
        "bot-mdtap",
        {
            "type": "TAPQueryRunner",
            "options": {"queries": [query], "sync": False, "idle_time": "10ms"},
        },
    )
    sia = flock(
        "sia",
        "bot-mdsia",
        {
            "type": "SIAQuerySetRunner",
            "options": {"dataset": "sandbox", "query_set": "bosun-sandbox", "idle_time": "10ms"},
        },
    )
    with client(svc) as c:
        assert c.put("/flocks", json=tap).status_code == 201
        assert c.put("/flocks", json=sia).status_code == 201

        def business(flock: str, monkey: str) -> dict:
            return c.get(f"/flocks/{flock}/monkeys/{monkey}").json()["business"]

        # The monkey spends nearly all its time in its query: caught there within a few polls.
        data = wait_for(
            lambda: (b := business("tap", "bot-mdtap1")).get("running_query") and b,
            timeout=60,
            what="a TAP query under way",
        )
        assert set(data) == COMMON_KEYS | {"running_query"}
        assert data["name"] == "TAPQueryRunner" and data["running_query"] == query
        # The same field in the flock's JSON (each of its monkeys).
        wait_for(
            lambda: c.get("/flocks/tap").json()["monkeys"][0]["business"].get("running_query"),
            timeout=30,
            what="the query in GET /flocks/tap",
        )

        data = wait_for(
            lambda: (b := business("sia", "bot-mdsia1")).get("running_query") and b,
            timeout=60,
            what="an SIA search under way",
        )
        assert data["name"] == "SIAQuerySetRunner"
        running = data["running_query"]
        assert set(running) == {"ra", "dec", "radius", "time"}
        assert all(isinstance(running[k], float) for k in ("ra", "dec", "radius"))
        assert len(running["time"]) == 2 and all(isinstance(t, float) for t in running["time"])

        wait_for(
            lambda: c.get("/flocks/tap/summary").json()["success_count"] >= 3,
            timeout=60,
            what="three TAP queries",
        )
        log = c.get("/flocks/tap/monkeys/bot-mdtap1/log").text
        # mobu's TAP lines, each query: its iteration, the query, its time, the idle.
        for line in (
            "Starting next iteration",
            f"Running (async): {query}",
            "Query finished after ",
            "Idling...",
        ):
            assert log.count(line) >= 3, log[-3000:]
        wait_for(
            lambda: c.get("/flocks/sia/summary").json()["success_count"] >= 2,
            timeout=60,
            what="two SIA searches",
        )
        log = c.get("/flocks/sia/monkeys/bot-mdsia1/log").text
        assert log.count("Running SIA query: pos=(") >= 2, log[-3000:]
        assert log.count("Query finished after ") >= 2

        # Paused (labs released: the monkeys stopped): nothing under way, the field left out.
        assert c.post("/flocks/tap/pause").status_code in (200, 202, 204)
        data = business("tap", "bot-mdtap1")
        assert set(data) == COMMON_KEYS and data["success_count"] >= 3
        assert c.delete("/flocks/tap").status_code == 204
        assert c.delete("/flocks/sia").status_code == 204
    assert svc.stop() == 0


def test_lab_monkeys_show_image_notebook_and_running_code(service, sandbox, tmp_path):
    from tests.integration.test_scale import running_labs

    notebooks = tmp_path / "notebooks"
    write_notebook(notebooks / "slow.ipynb", SLOW_CELL, "print('slow done')", SECRET_CELL)
    prefix = "bot-mdnb"
    runner = flock(
        "notebooks",
        prefix,
        {
            "type": "NotebookRunnerInfinite",
            "options": {
                "notebooks_dir": str(notebooks),
                "image": {"image_class": "latest-weekly", "size": "Small"},
                "execution_idle_time": "200ms",
                "spawn_timeout": "120s",
                "delete_timeout": "60s",
            },
        },
    )
    loop = flock(
        "python",
        "bot-mdpy",
        {
            "type": "NubladoPythonLoop",
            "options": {
                "code": "print(6*7)",
                "execution_idle_time": "200ms",
                "spawn_timeout": "120s",
                "delete_timeout": "60s",
            },
        },
    )
    svc = service()
    monkey = f"/flocks/notebooks/monkeys/{prefix}1"
    with client(svc) as c:
        assert c.put("/flocks", json=runner).status_code == 201
        assert c.put("/flocks", json=loop).status_code == 201
        data = wait_for(
            lambda: (b := c.get(monkey).json()["business"]).get("running_code") == SLOW_CELL and b,
            timeout=240,
            what="the slow cell under way",
        )
        # mobu's NotebookRunnerData: the image the lab runs (the spawn form's choice, read
        # in the lab as mobu reads it), the notebook's file name, the cell's code.
        assert data == {
            "name": "NotebookRunnerInfinite",
            "failure_count": 0,
            "success_count": data["success_count"],
            "refreshing": False,
            "image": {"reference": "sandbox/lab:w_2025_01", "description": "Weekly 2025_01"},
            "notebook": "slow.ipynb",
            "running_code": SLOW_CELL,
        }
        wait_for(
            lambda: c.get("/flocks/notebooks/summary").json()["success_count"] >= 1,
            timeout=60,
            what="the notebook run once",
        )
        log = c.get(monkey + "/log").text
        for line in (
            "Logging in to hub",
            "Creating lab session",
            "Running on image sandbox/lab:w_2025_01 (Weekly 2025_01)",
            "Starting next iteration",
            "Notebook slow.ipynb iteration 1/infinite",
            # The cell's number in the notebook (counting its markdown title), as bosun's
            # events and errors name it.
            f"Executing cell 2:\n{SLOW_CELL}\n",
            "Result:\nslow done\n",
            "Success running notebook slow.ipynb",
            "Done with this cycle of notebooks",
        ):
            assert line in log, log[-3000:]
        assert "pa55-w0rd-Secret" not in log and "Executing cell 4:\nurl = 'https://bot:" in log
        assert c.delete("/flocks/notebooks").status_code == 204
        assert running_labs(sandbox, prefix) == []

        # NubladoPythonLoop: mobu's NubladoBusinessData, the image only (the default
        # class, recommended); mobu's line for each execution, code -> output.
        wait_for(
            lambda: c.get("/flocks/python/summary").json()["success_count"] >= 2,
            timeout=120,
            what="two executions",
        )
        data = c.get("/flocks/python/monkeys/bot-mdpy1").json()["business"]
        assert set(data) == COMMON_KEYS | {"image"}
        assert data["image"] == {
            "reference": "sandbox/lab:recommended",
            "description": "Recommended (Weekly 2025_01)",
        }
        log = c.get("/flocks/python/monkeys/bot-mdpy1/log").text
        assert log.count("print(6*7) -> 42\n") >= 2, log[-3000:]
        assert c.delete("/flocks/python").status_code == 204
        assert running_labs(sandbox, "bot-mdpy") == []
    assert svc.stop() == 0
