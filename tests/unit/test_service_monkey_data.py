"""The monkey's JSON (`ServiceFlock._monkey_data`) per business, and the monkey's log.

The expected shapes are mobu's (``lsst-sqre/mobu`` 95fe256, ``src/mobu/models/business/``):
``BusinessData`` (name, failure_count, success_count, refreshing) for every business;
``NubladoBusinessData`` adds ``image`` (``RunningImage``: reference, description) for
NubladoPythonLoop; ``NotebookRunnerData`` adds ``notebook`` (the file's name) and
``running_code`` for the notebook runners; ``TAPBusinessData`` adds ``running_query`` (the ADQL)
and ``SIABusinessData`` ``running_query`` (``SIAQuery``: ra, dec, radius, time). mobu's routes
leave out None (``response_model_exclude_none``), so a field is absent while idle.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from library.flock.businesses import business_class
from library.flock.businesses.base import MONKEY_LOG, MonkeyContext, say
from library.flock.businesses.lab import running_image
from library.flock.models import parse_flocks
from library.redact import isolated_registry, register_secret
from library.service.flock import ServiceFlock
from library.service.monkeylog import MAX_LINE_CHARS, MonkeyLog
from library.service.runtime import Runtime
from library.sia.params import SIAQuery

COMMON = {"failure_count": 0, "success_count": 0, "refreshing": False}
IMAGE = {"reference": "sandbox/lab:w_2025_01", "description": "Weekly 2025_01"}


def flock_of(business: str, options: dict[str, Any] | None = None, count: int = 1) -> Any:
    item: dict[str, Any] = {
        "name": "f",
        "count": count,
        "user_spec": {"username_prefix": "bot-data"},
        "scopes": [],
        "business": {"type": business},
    }
    if options is not None:
        item["business"]["options"] = options
    (config,) = parse_flocks([item])
    return config


@pytest.fixture
def service_flock(tmp_path):
    runtimes: list[Runtime] = []

    def make(business: str, options: dict[str, Any] | None = None):
        runtime = Runtime(tmp_path / f"events-{len(runtimes)}", {})
        runtimes.append(runtime)
        return ServiceFlock(flock_of(business, options), runtime, source="api", created_by="t")

    yield make
    for runtime in runtimes:
        asyncio.run(runtime.aclose())


def running(flock: ServiceFlock, name: str = "bot-data1") -> Any:
    """The monkey's business object as the engine makes it (not started: no platform here)."""
    monkey = flock.monkeys[name]
    config = flock.config.business
    ctx = MonkeyContext(flock.name, config.type, monkey.user, flock.runtime.recorder, None)  # type: ignore[arg-type]
    monkey.business = business_class(config.type)(ctx, config.parsed_options)
    return monkey.business


def business_json(flock: ServiceFlock) -> dict[str, Any]:
    return flock.get_monkey("bot-data1")["business"]


@pytest.mark.parametrize(
    "business",
    ["NotebookRunnerCounting", "NotebookRunnerList", "NotebookRunnerInfinite"],
)
def test_notebook_runners_show_image_notebook_and_running_code(service_flock, business):
    flock = service_flock(business, {"repo_url": "https://example.org/notebooks.git"})
    assert business_json(flock) == {"name": business, **COMMON}  # not started yet
    runner = running(flock)
    assert business_json(flock) == {"name": business, **COMMON}  # started, no lab yet
    runner.image = dict(IMAGE)
    runner.notebook = "cluster.ipynb"
    runner.cell_started(2, "import time\ntime.sleep(5)")
    assert business_json(flock) == {
        "name": business,
        **COMMON,
        "image": IMAGE,
        "notebook": "cluster.ipynb",
        "running_code": "import time\ntime.sleep(5)",
    }
    runner.cell_finished(2, None)
    # mobu keeps the notebook's name after it ran (until the business refreshes).
    assert business_json(flock) == {
        "name": business,
        **COMMON,
        "image": IMAGE,
        "notebook": "cluster.ipynb",
    }


def test_nublado_python_loop_shows_its_image_only(service_flock):
    flock = service_flock("NubladoPythonLoop")
    runner = running(flock)
    assert business_json(flock) == {"name": "NubladoPythonLoop", **COMMON}
    runner.image = {"reference": "sandbox/lab:r29_0_0"}  # a lab without IMAGE_DESCRIPTION
    assert business_json(flock) == {
        "name": "NubladoPythonLoop",
        **COMMON,
        "image": {"reference": "sandbox/lab:r29_0_0"},
    }


@pytest.mark.parametrize(
    ("business", "options"),
    [
        ("TAPQueryRunner", {"queries": ["SELECT TOP 1 * FROM tap_schema.tables"]}),
        ("TAPQuerySetRunner", {"query_set": "bosun-sandbox"}),
    ],
)
def test_tap_runners_show_the_running_query(service_flock, business, options):
    flock = service_flock(business, options)
    runner = running(flock)
    assert business_json(flock) == {"name": business, **COMMON}
    runner.running_query = "SELECT TOP 1 * FROM tap_schema.tables"
    assert business_json(flock) == {
        "name": business,
        **COMMON,
        "running_query": "SELECT TOP 1 * FROM tap_schema.tables",
    }


def test_sia_runner_shows_the_running_query_as_mobus_siaquery(service_flock):
    flock = service_flock("SIAQuerySetRunner")
    runner = running(flock)
    assert business_json(flock) == {"name": "SIAQuerySetRunner", **COMMON}
    runner.running_query = SIAQuery(ra=55.5, dec=-30.25, radius=0.05, time=(60000.0, 60010.5))
    assert business_json(flock)["running_query"] == {
        "ra": 55.5,
        "dec": -30.25,
        "radius": 0.05,
        "time": [60000.0, 60010.5],
    }


@pytest.mark.parametrize(
    ("business", "options"),
    [
        ("EmptyLoop", None),
        ("HTTPLoop", {"url": "http://127.0.0.1:9/"}),
        (
            "GitLFS",
            {"lfs_read_url": "http://127.0.0.1:9/r", "lfs_write_url": "http://127.0.0.1:9/w"},
        ),
        ("Muster", None),
    ],
)
def test_businesses_without_data_show_the_common_fields_only(service_flock, business, options):
    flock = service_flock(business, options)
    running(flock)
    data = flock.dump()["monkeys"][0]
    assert list(data) == ["name", "state", "user", "business"]
    assert data["business"] == {"name": business, **COMMON}
    assert flock._business_data is False  # nothing asked of the monkey per request


def test_running_image_reads_mobus_two_lines():
    assert running_image("sandbox/lab:w_2025_01\nWeekly 2025_01\n") == IMAGE
    # A lab without the variables prints None for them (mobu would show the text "None").
    assert running_image("sandbox/lab:w_2025_01\nNone\n") == {"reference": "sandbox/lab:w_2025_01"}
    assert running_image("None\nNone\n") is None
    assert running_image("garbled") is None


def test_say_writes_to_the_running_monkeys_log_only():
    log = MonkeyLog(10)
    say("nowhere")  # outside a monkey's task: no log, no error
    token = MONKEY_LOG.set(log)
    try:
        say("Running (sync): SELECT 1")
    finally:
        MONKEY_LOG.reset(token)
    say("nowhere either")
    assert [line for _, line in log.lines] == ["Running (sync): SELECT 1"]


def test_monkey_log_is_bounded_and_masks_secrets_when_read():
    with isolated_registry():
        log = MonkeyLog(3)
        for i in range(5):
            log.add(f"line {i}")
        assert [line for _, line in log.lines] == ["line 2", "line 3", "line 4"]
        secret = "tok-" + "s3cr3t" * 4
        log.add(f"Executing cell 1:\nTOKEN = '{secret}'\n")
        # Registered after the line was added: still masked, since lines are masked when read.
        register_secret(secret)
        text = log.text()
        assert secret not in text and "TOKEN = '" in text
        assert text.count("\n") == 3 + 2  # three lines kept, one of them three lines long
        assert time.strftime("%Y-%m-%d ", time.gmtime()) in text


def test_monkey_log_cuts_long_lines_after_masking():
    with isolated_registry():
        secret = "tok-" + "x9" * 20
        register_secret(secret)
        log = MonkeyLog(5)
        # The secret straddles the cut: masked whole first, so no part of it is kept.
        text = "a" * (MAX_LINE_CHARS - 10) + secret + "b" * 5000
        log.add(text)
        ((_, line),) = log.lines
        assert secret[:10] not in line and "more characters]" in line
        assert len(line) < MAX_LINE_CHARS + 40


def test_last_line_with_a_prefix_masks_only_that_line():
    with isolated_registry():
        secret = "tok-" + "k7" * 12
        register_secret(secret)
        log = MonkeyLog(10)
        log.add(f"ERROR tap_query q1: TapError: refused {secret}")
        log.add(f"Running (sync): SELECT '{secret}'")
        log.add("ERROR tap_query q2: TapError: timeout")
        log.add(f"Query finished after 0.010 seconds {secret}")
        assert log.last("ERROR") == "ERROR tap_query q2: TapError: timeout"
        assert log.last("WARNING") is None
        # Only the line returned was masked; every line read later is masked all the same.
        assert [masked for _, _, masked in log._entries] == [False, False, True, False]
        assert all(secret not in line for _, line in log.lines)
        log.add("INFO x")
        assert log.last("ERROR") == "ERROR tap_query q2: TapError: timeout"


def test_a_large_flocks_json_is_written_as_orjson_would_render_its_dump(tmp_path):
    """`dump_json` writes the answer from text (the API's large answers): byte for byte what
    orjson makes of `dump()`, in every state a monkey or the flock can be in."""
    import orjson

    (config,) = parse_flocks(
        [
            {
                "name": "big",
                "count": 4,
                "user_spec": {
                    "username_prefix": "bot-data",
                    "uid_start": 5000,
                    "groups": [{"name": 'g\u00e9 "q"', "id": 7}],
                },
                "scopes": ["read:tap", "exec:notebook"],
                "business": {"type": "HTTPLoop", "options": {"url": 'http://127.0.0.1:9/"x"'}},
            }
        ]
    )
    runtime = Runtime(tmp_path / "events", {})
    flock = ServiceFlock(config, runtime, source="api", created_by="t")
    loop = asyncio.new_event_loop()
    try:

        def same() -> bool:
            return flock.dump_json() == orjson.dumps(flock.dump(), option=orjson.OPT_SORT_KEYS)

        assert same()  # nothing started: IDLE
        names = list(flock.users)
        done = loop.create_future()
        done.set_result(None)
        flock.tasks = {names[0]: loop.create_future(), names[1]: done}
        flock.stats[names[0]].successes, flock.stats[names[0]].failures = 12, 3
        flock._refresh.add(names[2])
        assert same()  # RUNNING, FINISHED, IDLE refreshing
        states = {m["state"] for m in orjson.loads(flock.dump_json())["monkeys"]}
        assert states == {"RUNNING", "FINISHED", "IDLE"}
        flock.paused = True
        assert same()
        flock.stopping = True
        assert same()
    finally:
        loop.close()
        asyncio.run(runtime.aclose())
