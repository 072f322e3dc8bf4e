"""Query sets come from repositories: their templates render sandboxed, their files stay inside
the set, and their sizes are bounded before any query runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from library.errors import UserError
from library.tap.query_set import MAX_OBJECTS_COUNT, QuerySet

PARAMS = "object_ids: [1, 2, 3]\n"


def make_set(root: Path, template: str, params: str = PARAMS) -> Path:
    qs = root / "hostile"
    qs.mkdir()
    (qs / "params.yaml").write_text(params)
    (qs / "q.sql").write_text(template)
    return qs


@pytest.mark.parametrize(
    "template",
    [
        "SELECT {{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}",
        "SELECT {{ ''.__class__.__mro__[1].__subclasses__() }}",
        "SELECT {{ self._TemplateReference__context }}",
        "{% set x = [].append(1) %}SELECT 1",
        "SELECT {{ 'x' * 100000000 }}",
        "SELECT {{ 9 ** 99999999 }}",
        "{% for i in range(100000000) %}{% endfor %}SELECT 1",
    ],
    ids=["globals-os", "subclasses", "context", "mutation", "repeat", "power", "range"],
)
def test_hostile_templates_are_refused_when_rendered(tmp_path, template):
    marker = tmp_path / "pwned"
    qs = QuerySet.load(make_set(tmp_path, template.replace("{marker}", str(marker))))
    with pytest.raises(UserError) as err:
        qs.check_renders()
    assert "q.sql" in str(err.value)
    assert not marker.exists()


def test_ordinary_templates_still_render(tmp_path):
    qs = QuerySet.load(
        make_set(
            tmp_path,
            "SELECT TOP {{ 10 * 2 }} * FROM t WHERE id IN ({{ objects }})"
            " AND r < {{ '%.3f' | format(radius) }} -- {{ username | upper }}",
        )
    )
    name, adql = qs.generate(random.Random(1), "bot-x")
    assert name == "q" and adql.startswith("SELECT TOP 20 * FROM t WHERE id IN (")
    assert adql.endswith("-- BOT-X")


@pytest.mark.parametrize("count", [300_000_000, MAX_OBJECTS_COUNT + 1, 0, 2.5, "3e8"])
def test_objects_count_is_bounded_at_load(tmp_path, count):
    with pytest.raises(UserError, match="objects_count.*must be an integer from 1 to 10,000"):
        QuerySet.load(make_set(tmp_path, "SELECT 1", PARAMS + f"objects_count: {count}\n"))


def test_a_template_linked_out_of_the_set_is_refused(tmp_path):
    secret = tmp_path / "outside.sql"
    secret.write_text("SELECT 'a file from elsewhere'")
    qs = make_set(tmp_path, "SELECT 1")
    (qs / "leak.sql").symlink_to(secret)
    with pytest.raises(UserError, match="leak.sql: a link to .*outside the query set"):
        QuerySet.load(qs)


def test_params_linked_out_of_the_set_are_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("object_ids: [1]\n")
    qs = tmp_path / "linked"
    qs.mkdir()
    (qs / "params.yaml").symlink_to(elsewhere)
    (qs / "q.sql").write_text("SELECT 1")
    with pytest.raises(UserError, match="params.yaml: a link to .*outside the query set"):
        QuerySet.load(qs)
