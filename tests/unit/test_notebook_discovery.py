"""Notebook collection rules on a fixture tree."""

import json

import pytest

from library.notebooks.discovery import discover, required_services, services_from_name


def _nb(path, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"cells": [], "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5})
    )


@pytest.fixture
def tree(tmp_path):
    _nb(tmp_path / "python.ipynb")
    _nb(tmp_path / "tap_cone.ipynb")
    _nb(tmp_path / "tap.ipynb")
    _nb(tmp_path / "butler_registry.ipynb")
    _nb(tmp_path / "vo-cutouts_one.ipynb")
    _nb(tmp_path / "tapestry.ipynb")  # starts with "tap" but is not "tap_..."
    _nb(tmp_path / "sub" / "deep" / "sia_query.ipynb")
    _nb(tmp_path / "meta_tap.ipynb", {"bosun": {"required_services": ["tap", "nublado"]}})
    _nb(tmp_path / "meta_mobu.ipynb", {"mobu": {"required_applications": ["portal"]}})
    _nb(tmp_path / "tap_but_meta.ipynb", {"bosun": {"required_services": []}})
    _nb(tmp_path / "drafts" / "broken.ipynb")
    _nb(tmp_path / "sub" / "drafts" / "wip.ipynb")
    _nb(tmp_path / ".ipynb_checkpoints" / "python-checkpoint.ipynb")
    _nb(tmp_path / "scratch.ipynb")
    return tmp_path


def _selected(found):
    return found.to_dict()["selected"]


def test_everything_runs_by_default_except_hidden_dirs(tree):
    found = discover(tree)
    assert len(_selected(found)) == 13
    assert not any(".ipynb_checkpoints" in s for s in _selected(found))


def test_exclusion_dirs_by_name_and_by_path(tree):
    by_name = discover(tree, exclude_dirs=["drafts"])
    assert "drafts/broken.ipynb" in by_name.skipped
    assert "sub/drafts/wip.ipynb" in by_name.skipped
    by_path = discover(tree, exclude_dirs=["sub/drafts"])
    assert "drafts/broken.ipynb" in _selected(by_path)
    assert by_path.skipped == {"sub/drafts/wip.ipynb": "in excluded directory sub/drafts"}


def test_include_and_exclude_globs(tree):
    found = discover(tree, include=["tap*.ipynb"], exclude=["tapestry*"])
    assert _selected(found) == ["tap.ipynb", "tap_but_meta.ipynb", "tap_cone.ipynb"]
    assert found.skipped["tapestry.ipynb"] == "matches an exclude glob"
    assert found.skipped["python.ipynb"] == "matches no include glob"
    deep = discover(tree, include=["sub/**"])
    assert _selected(deep) == ["sub/deep/sia_query.ipynb", "sub/drafts/wip.ipynb"]


def test_services_from_metadata_and_names(tree):
    found = discover(tree, exclude_dirs=["drafts"], services=["nublado", "tap"])
    selected = _selected(found)
    assert {
        "python.ipynb",
        "tap.ipynb",
        "tap_cone.ipynb",
        "meta_tap.ipynb",
        "tapestry.ipynb",
        "scratch.ipynb",
        "tap_but_meta.ipynb",
    } == set(selected)
    assert found.skipped["butler_registry.ipynb"] == "needs services not deployed: butler"
    assert found.skipped["meta_mobu.ipynb"] == "needs services not deployed: portal"
    assert found.skipped["vo-cutouts_one.ipynb"] == "needs services not deployed: vo-cutouts"
    assert "sia" in found.skipped["sub/deep/sia_query.ipynb"]


def test_metadata_wins_over_name(tree):
    assert required_services(tree / "tap_but_meta.ipynb") == set()
    assert required_services(tree / "meta_tap.ipynb") == {"tap", "nublado"}
    assert services_from_name("vo-cutouts_x.ipynb") == {"vo-cutouts"}
    assert services_from_name("tapestry.ipynb") == set()


def test_a_deployed_service_unknown_to_the_catalogue_still_names_notebooks(tree):
    _nb(tree / "rubintv_check.ipynb")
    assert "rubintv_check.ipynb" in _selected(discover(tree, services=["rubintv"]))
    assert "rubintv_check.ipynb" in _selected(discover(tree, services=["tap"]))
