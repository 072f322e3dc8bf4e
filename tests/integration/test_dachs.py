"""The sandbox's DaCHS: idempotent up, the whole catalogue published, down leaves no listener."""

from __future__ import annotations

from urllib.parse import urlparse

import psutil
import pytest

from library.errors import UserError
from library.sandbox import catalogue, dachs
from library.sandbox.state import port_is_listening, state_dir
from library.tap.client import TapClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tap(sandbox):
    assert sandbox.tap_url, "the sandbox runs without its TAP service (see sandbox status)"
    return sandbox.tap_url, urlparse(sandbox.tap_url).port


def test_dachs_can_run_on_this_machine():
    assert dachs.unavailable_reason() is None


def test_second_up_neither_reimports_nor_restarts(tap):
    url, port = tap
    before = dachs.status(state_dir())
    assert before["running"] and before["url"] == url
    again = dachs.up(state_dir(), port, 60)
    assert again["url"] == url and again["imported"] is False
    assert again["pids"]["dachs"] == before["pid"]


def test_the_whole_catalogue_is_published(tap):
    url, _port = tap
    client = TapClient(url)
    objects = catalogue.objects()
    n_sources = len(catalogue.sources(objects)["sourceId"])

    def count(table):
        return int(
            client.run(f"SELECT COUNT(*) AS n FROM {table}", keep_table=True).table.to_table()["n"][
                0
            ]
        )

    assert count("sandbox.objects") == len(objects["objectId"]) == catalogue.N_OBJECTS
    assert count("sandbox.sources") == n_sources
    columns = client.run(
        "SELECT column_name FROM TAP_SCHEMA.columns WHERE table_name = 'sandbox.objects'",
        keep_table=True,
    ).table.to_table()["column_name"]
    names = {str(c).lower() for c in columns}
    assert {"objectid", "ra", "dec", "extendedness", "r_flux", "r_mag", "y_fluxerr"} <= names


def test_down_stops_dachs_and_frees_the_port_then_up_restores_it(tap):
    url, port = tap
    pid = dachs.status(state_dir())["pid"]
    dachs.down(state_dir())
    try:
        assert dachs.status(state_dir()) == {"running": False, "url": None, "pid": None}
        assert not port_is_listening(port)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        again = dachs.up(state_dir(), port, 120)
    assert again["url"] == url and again["imported"] is False
    assert TapClient(url).run(dachs.PROBE_ADQL).rows == 1


def test_a_second_sandbox_cannot_take_the_tap_service_over(tap, tmp_path):
    """DaCHS is one per machine: another state dir is refused, and its down leaves TAP alone."""
    url, port = tap
    other = tmp_path / "other"
    before = dachs.status(state_dir())["pid"]
    with pytest.raises(UserError) as err:
        dachs.up(other, port + 100, 60)
    message = str(err.value)
    assert f"serves the sandbox in {state_dir()}" in message and "--no-tap" in message
    assert url in message
    dachs.down(other)
    assert dachs.status(state_dir()) == {"running": True, "url": url, "pid": before}
    assert TapClient(url).run("SELECT TOP 1 objectId FROM sandbox.objects").rows == 1
