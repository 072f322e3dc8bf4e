"""`tap render`: a query set's queries printed without running them, seeded as run_query_set."""

from __future__ import annotations

from pathlib import Path

import pytest

from library.tap import runner
from library.tap.query_set import QuerySet
from tests.helpers import REPO, run_cli

MOBU_DATA = Path(__file__).resolve().parents[1] / "fixtures" / "mobu"


def _render(*args, env=None):
    return run_cli(REPO / "run_toolbox.py", "tap", "render", *args, env=env)


def test_the_same_seed_prints_the_queries_run_query_set_draws():
    first = _render("--query-set", "bosun-sandbox", "--count", "4", "--seed", "7")
    again = _render("--query-set", "bosun-sandbox", "--count", "4", "--seed", "7")
    other = _render("--query-set", "bosun-sandbox", "--count", "4", "--seed", "8")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout != other.stdout
    plan = runner.plan(QuerySet.load("bosun-sandbox"), 7, 4, 1)
    for name, adql in plan[0]:
        assert f": {name}\n{adql.strip()}\n" in first.stdout


def test_templates_that_need_the_service_are_listed_as_skipped_offline():
    out = _render("--query-set", "bosun-dp02", "--count", "3", "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert "-- object-one: skipped offline: its object ids come from the service" in out.stdout
    assert "object-one\nSELECT" not in out.stdout


def test_a_mobu_set_by_name_from_the_search_path(monkeypatch):
    monkeypatch.delenv("BOSUN_QUERY_SET_PATH", raising=False)
    env = {"BOSUN_QUERY_SET_PATH": str(MOBU_DATA)}
    out = _render("--query-set", "dp0.2", "--count", "5", "--seed", "3", env=env)
    assert out.returncode == 0, out.stderr
    assert "FROM dp02_dc2_catalogs." in out.stdout and "{{" not in out.stdout
    missing = _render("--query-set", "dp0.2")
    assert missing.returncode == 2
    assert "error: --query-set 'dp0.2': not found; looked in: shipped" in missing.stderr


@pytest.mark.parametrize("bad", [["--count", "0"], ["--concurrency", "0"]])
def test_bad_counts(bad):
    out = _render("--query-set", "bosun-sandbox", *bad)
    assert out.returncode == 2 and "at least 1" in out.stderr
