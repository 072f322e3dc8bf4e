"""Query-set rendering: reproducible by seed, valid polygons, clear errors, mobu's format."""

from __future__ import annotations

import math
import random
import re
import textwrap
from pathlib import Path

import pytest

from library.errors import UserError
from library.tap.query_set import QuerySet, list_shipped, random_polygon


def write_set(tmp_path, params: str, templates: dict[str, str]):
    (tmp_path / "params.yaml").write_text(textwrap.dedent(params))
    for name, text in templates.items():
        (tmp_path / f"{name}.sql").write_text(textwrap.dedent(text))
    return tmp_path


def test_same_seed_same_queries_other_seed_other_queries():
    qs = QuerySet.load("bosun-sandbox")
    first = [qs.generate(random.Random(42)) for _ in range(1)]
    rng_a, rng_b, rng_c = random.Random(42), random.Random(42), random.Random(43)
    a = [qs.generate(rng_a) for _ in range(50)]
    b = [qs.generate(rng_b) for _ in range(50)]
    c = [qs.generate(rng_c) for _ in range(50)]
    assert a == b
    assert a[0] == first[0]
    assert a != c
    # Every query carries its own id, so the service side can tell them apart.
    ids = [re.search(r"'(bosun-[0-9a-f]{16})'", adql).group(1) for _name, adql in a]
    assert len(set(ids)) == 50


def test_every_shipped_template_renders_and_is_drawn():
    for name in list_shipped():
        qs = QuerySet.load(name)
        if name == "bosun-dp02":
            qs.params["object_ids"] = [1, 2, 3]  # sampled from the service at run time
        qs.check_renders()
        rng = random.Random(1)
        drawn = {qs.generate(rng)[0] for _ in range(400)}
        assert drawn == set(qs.templates), name
        for _, adql in (qs.generate(rng) for _ in range(50)):
            assert "{{" not in adql and "}}" not in adql


def _segments_cross(p1, p2, p3, p4) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(p3, p4, p1), orient(p3, p4, p2)
    d3, d4 = orient(p1, p2, p3), orient(p1, p2, p4)
    return d1 * d2 < 0 and d3 * d4 < 0


def test_polygons_are_valid_and_inside_the_bounds():
    qs = QuerySet.load("bosun-sandbox")
    p = qs.params
    rng = random.Random(7)
    sizes = set()
    for _ in range(2000):
        vertices = random_polygon(rng, p)
        n = len(vertices)
        sizes.add(n)
        assert 3 <= n <= 7
        for ra, dec in vertices:
            assert p["min_ra"] <= ra <= p["max_ra"] and p["min_dec"] <= dec <= p["max_dec"]
        assert len(set(vertices)) == n
        # Same orientation as mobu's (north, then east): negative signed area in (ra, dec).
        area = (
            sum(
                vertices[i][0] * vertices[(i + 1) % n][1]
                - vertices[(i + 1) % n][0] * vertices[i][1]
                for i in range(n)
            )
            / 2
        )
        assert area < 0
        # Convex: every turn goes the same way, so no edge can cross another.
        turns = []
        for i in range(n):
            a, b, c = vertices[i], vertices[(i + 1) % n], vertices[(i + 2) % n]
            turns.append((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]))
        assert all(t < 0 for t in turns)
        edges = [(vertices[i], vertices[(i + 1) % n]) for i in range(n)]
        for i in range(n):
            for j in range(i + 2, n):
                if i == 0 and j == n - 1:
                    continue
                assert not _segments_cross(*edges[i], *edges[j])
    assert sizes == {3, 4, 5, 6, 7}


def test_polygon_text_has_an_even_number_of_coordinates():
    qs = QuerySet.load("bosun-sandbox")
    values = qs.parameters(random.Random(3))
    numbers = [float(x) for x in values["polygon"].split(",")]
    assert len(numbers) % 2 == 0 and 6 <= len(numbers) <= 14


def test_cones_stay_inside_the_bounds():
    qs = QuerySet.load("bosun-sandbox")
    p = qs.params
    rng = random.Random(11)
    for _ in range(2000):
        v = qs.parameters(rng)
        r = max(v["radius"], v["radius_near"])
        assert p["min_dec"] + r <= v["dec"] <= p["max_dec"] - r
        margin = r / math.cos(math.radians(v["dec"]))
        assert p["min_ra"] + margin - 1e-9 <= v["ra"] <= p["max_ra"] - margin + 1e-9
        assert v["min_flux"] < v["max_flux"] and v["min_mag"] < v["max_mag"]


def test_undefined_variable_names_template_variable_and_fix(tmp_path):
    path = write_set(
        tmp_path,
        "min_ra: 1\nmax_ra: 2\nmin_dec: 1\nmax_dec: 2\n",
        {"lookup": "SELECT * FROM t WHERE id = {{ object }}\n"},
    )
    qs = QuerySet.load(path)
    with pytest.raises(UserError) as err:
        qs.check_renders()
    message = str(err.value)
    assert "lookup.sql" in message and "'object' is undefined" in message
    assert "object_ids" in message and "\n" not in message


def test_typo_in_variable_fails_instead_of_rendering_empty(tmp_path):
    path = write_set(tmp_path, "object_ids: [5]\n", {"cone": "SELECT {{ raa }} FROM t\n"})
    with pytest.raises(UserError, match="'raa' is undefined"):
        QuerySet.load(path).generate(random.Random(0))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("min_ra: [1]\n", "'min_ra' must be a number"),
        ("min_ra: 10\nmax_ra: 5\n", "increasing bounds"),
        ("object_ids: []\n", "'object_ids' must be a non-empty list"),
        ("flux_range: [5, 1]\n", "'flux_range' must be [low, high]"),
        ("min_ra: [\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_params_name_the_file_and_key(tmp_path, params, expected):
    path = write_set(tmp_path, params, {"q": "SELECT 1\n"})
    with pytest.raises(UserError) as err:
        QuerySet.load(path)
    assert "params.yaml" in str(err.value) and expected in str(err.value)


def test_missing_set_and_empty_set(tmp_path, monkeypatch):
    monkeypatch.delenv("BOSUN_QUERY_SET_PATH", raising=False)
    with pytest.raises(UserError, match=r"looked in: shipped \(bosun-dp02, bosun-sandbox\)"):
        QuerySet.load("no-such-set")
    (tmp_path / "params.yaml").write_text("{}\n")
    with pytest.raises(UserError, match=r"no \*.sql templates"):
        QuerySet.load(tmp_path)


def test_template_syntax_error_names_file_and_line(tmp_path):
    path = write_set(tmp_path, "{}\n", {"broken": "SELECT 1\nWHERE {{ ra \n"})
    with pytest.raises(UserError, match=r"broken.sql line \d"):
        QuerySet.load(path)


def test_mobu_query_set_directory_is_accepted_as_is(tmp_path):
    # The layout and variable names of mobu's data/tapquerysetrunner/<set>/ directories.
    path = write_set(
        tmp_path,
        """\
        ---
        # bounds of the field
        min_ra: 4.40
        max_ra: 5.30
        min_dec: -52.0
        max_dec: -51.8

        min_radius: 0.02
        radius_range: 0.07
        radius_near_range: 0.16

        object_ids:
        - 734705695588352287
        - 734705558149398914
        - 734705695588352288
        """,
        {
            "object-one": """\
                SELECT '{{ query_id }}', 'object-one', *
                FROM dp2.Object
                WHERE objectId = {{ object }}
                """,
            "object-several": """\
                SELECT '{{ query_id }}', 'object-several', *
                FROM dp2.Object WHERE objectId IN ({{ objects }})
                """,
            "polygon-object": """\
                SELECT '{{ query_id }}', 'polygon-object', *
                FROM dp2.Object
                WHERE CONTAINS(POINT('ICRS', coord_ra, coord_dec), POLYGON('ICRS', {{ polygon }}))=1
                """,
            "near-neighbor": """\
                SELECT '{{ query_id }}', o1.objectId, o2.objectId
                FROM dp2.Object o1, dp2.Object o2
                WHERE CONTAINS(POINT('ICRS', o1.coord_ra, o1.coord_dec),
                               CIRCLE('ICRS', {{ ra }}, {{ dec }}, {{ radius_near }}))=1
                AND o1.objectId <> o2.objectId
                """,
            "scan": """\
                SELECT '{{ query_id }}', {{ min_flux }}, {{ max_flux }}, {{ min_mag }},
                {{ max_mag }}, '{{ username }}' FROM dp2.Object WHERE {{ radius }} > 0
                """,
        },
    )
    qs = QuerySet.load(path)
    qs.check_renders()
    assert qs.name == tmp_path.name and len(qs.active) == 5
    rng = random.Random(5)
    values = qs.parameters(rng, username="bot-mobu-tap")
    assert 4.40 <= values["ra"] <= 5.30 and -52.0 <= values["dec"] <= -51.8
    assert 0.02 <= values["radius"] <= 0.09
    assert values["object"] in {"734705695588352287", "734705558149398914", "734705695588352288"}
    assert len(values["objects"].split(", ")) == 12
    adql = qs.render("object-one", values)
    assert f"WHERE objectId = {values['object']}" in adql
    assert "'bot-mobu-tap'" in qs.render("scan", values)


MOBU_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mobu"


def test_shipped_names_cannot_be_mobus():
    """mobu's sets are dp0.1, dp0.2, dp0.2-long-scans, dp0.2-med-scans (TAP) and dp02 (SIA)."""
    assert list_shipped() == ["bosun-dp02", "bosun-sandbox"]
    assert all(name.startswith("bosun-") for name in list_shipped())


def test_a_mobu_name_is_found_only_on_the_search_path(monkeypatch):
    monkeypatch.delenv("BOSUN_QUERY_SET_PATH", raising=False)
    with pytest.raises(UserError) as err:
        QuerySet.load("dp0.2")
    assert "'dp0.2': not found" in str(err.value) and "BOSUN_QUERY_SET_PATH" in str(err.value)
    # A mobu checkout's data directory layout, given by environment or by the caller.
    monkeypatch.setenv("BOSUN_QUERY_SET_PATH", f"/nonexistent:{MOBU_FIXTURE}")
    qs = QuerySet.load("dp0.2")
    assert qs.path == MOBU_FIXTURE / "data" / "tapquerysetrunner" / "dp0.2"
    assert "near-neighbor" in qs.templates  # mobu's template, not bosun's
    qs.check_renders()
    monkeypatch.delenv("BOSUN_QUERY_SET_PATH")
    assert QuerySet.load("dp0.2", [MOBU_FIXTURE / "data"]).path == qs.path


def test_an_unknown_name_lists_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("BOSUN_QUERY_SET_PATH", str(tmp_path))
    with pytest.raises(UserError) as err:
        QuerySet.load("dp9", [MOBU_FIXTURE])
    message = str(err.value)
    assert message.startswith("--query-set 'dp9': not found; looked in: shipped (")
    assert str(MOBU_FIXTURE) in message and str(tmp_path) in message
