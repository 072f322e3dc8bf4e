"""Which notebooks run: mobu's collection rules and mobu.yaml, bosun's opt-in name convention.

The tree and the rule examples are those of mobu's docs/user-guide/in-repo-config.rst
(lsst-sqre/mobu at 95fe256); the expected selections are the ones that page lists.
"""

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from library.errors import UserError
from library.notebooks.discovery import (
    discover,
    matches,
    required_applications,
    services_from_name,
)


def _nb(path, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"cells": [], "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5})
    )


# mobu's documented example tree.
MOBU_TREE = [
    "dont/run/these/nope_some_notebook.ipynb",
    "dont/run/these/some_notebook.ipynb",
    "dont/run/these/some_other_notebook.ipynb",
    "nope_some_notebook.ipynb",
    "nor/these/some_notebook.ipynb",
    "some/directory/some_notebook.ipynb",
    "someother/directory/some_notebook.ipynb",
    "some_notebook.ipynb",
]


@pytest.fixture
def mobu_tree(tmp_path):
    for rel in MOBU_TREE:
        _nb(tmp_path / rel)
    return tmp_path


def _selected(found):
    return sorted(found.to_dict()["selected"])


def _rules(*rules):
    return [{"type": t, "patterns": list(p)} for t, p in rules]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            _rules(("intersect_union_of",
                    ["some/directory/some_notebook.ipynb", "some_notebook.ipynb"])),
            ["some/directory/some_notebook.ipynb", "some_notebook.ipynb"],
        ),
        (
            _rules(("exclude_union_of", ["some/directory/some_notebook.ipynb"])),
            sorted(set(MOBU_TREE) - {"some/directory/some_notebook.ipynb"}),
        ),
        (
            _rules(("exclude_union_of", ["dont/run/these/**", "nor/these/**"])),
            [
                "nope_some_notebook.ipynb",
                "some/directory/some_notebook.ipynb",
                "some_notebook.ipynb",
                "someother/directory/some_notebook.ipynb",
            ],
        ),
        (
            _rules(("exclude_union_of", ["**/nope_*.ipynb"])),
            sorted(set(MOBU_TREE) - {"nope_some_notebook.ipynb",
                                     "dont/run/these/nope_some_notebook.ipynb"}),
        ),
        (
            _rules(("intersect_union_of", ["some/**", "someother/directory**"]),
                   ("intersect_union_of", ["**/some_*.ipynb"])),
            ["some/directory/some_notebook.ipynb"],
        ),
    ],
)  # fmt: skip
def test_mobus_documented_collection_rules(mobu_tree, rules, expected):
    assert _selected(discover(mobu_tree, collection_rules=rules)) == expected


def test_the_repos_mobu_yaml_applies_by_default_after_the_flocks_rules(mobu_tree):
    (mobu_tree / "mobu.yaml").write_text(
        yaml.safe_dump(
            {
                "exclude_dirs": ["nor"],
                "collection_rules": [{"type": "exclude_union_of", "patterns": ["dont/**"]}],
            }
        )
    )
    found = discover(
        mobu_tree, collection_rules=_rules(("exclude_union_of", ["nope_some_notebook.ipynb"]))
    )
    assert _selected(found) == [
        "some/directory/some_notebook.ipynb",
        "some_notebook.ipynb",
        "someother/directory/some_notebook.ipynb",
    ]
    skipped = found.skipped
    assert skipped["nope_some_notebook.ipynb"] == (
        "collection_rules[0] exclude_union_of (options): matches 'nope_some_notebook.ipynb'"
    )
    assert skipped["dont/run/these/some_notebook.ipynb"] == (
        "collection_rules[0] exclude_union_of (mobu.yaml): matches 'dont/**'"
    )
    assert skipped["nor/these/some_notebook.ipynb"] == "exclude_dirs (mobu.yaml): matches 'nor/**'"
    assert found.to_dict()["rules"][-1] == "exclude_dirs (mobu.yaml): nor/**"


def test_intersect_rule_names_its_patterns_when_it_drops(mobu_tree):
    found = discover(mobu_tree, collection_rules=_rules(("intersect_union_of", ["some/**"])))
    assert found.skipped["some_notebook.ipynb"] == (
        "collection_rules[0] intersect_union_of (options): matches none of 'some/**'"
    )


def test_a_bad_mobu_yaml_is_one_line_naming_the_key(mobu_tree):
    (mobu_tree / "mobu.yaml").write_text("collection_rules: [{type: exclude, patterns: [a]}]\n")
    with pytest.raises(UserError, match=r"mobu.yaml: collection_rules.0.type: Input should be"):
        discover(mobu_tree)
    (mobu_tree / "mobu.yaml").write_text("run_only: [a]\n")
    with pytest.raises(UserError, match=r"mobu.yaml: run_only: Extra inputs are not permitted"):
        discover(mobu_tree)


def test_a_repo_config_linked_out_of_the_repository_is_refused(tmp_path):
    """Notebook repositories are not trusted: their mobu.yaml and bosun.yaml are read only when
    they are the repository's own files, as its notebooks."""
    repo = tmp_path / "repo"
    _nb(repo / "a.ipynb")
    (tmp_path / "elsewhere.yaml").write_text("exclude_dirs: [x]\n")
    for name in ("mobu.yaml", "bosun.yaml"):
        (repo / name).symlink_to(tmp_path / "elsewhere.yaml")
        with pytest.raises(UserError, match=rf"{name}: a link to .*elsewhere.yaml, outside the"):
            discover(repo)
        (repo / name).unlink()
    assert _selected(discover(repo)) == ["a.ipynb"]


def test_exclude_dirs_are_relative_to_the_root_as_in_mobu(tmp_path):
    _nb(tmp_path / "drafts" / "a.ipynb")
    _nb(tmp_path / "sub" / "drafts" / "b.ipynb")
    found = discover(tmp_path, exclude_dirs=["drafts"])
    assert _selected(found) == ["sub/drafts/b.ipynb"]
    assert found.skipped == {"drafts/a.ipynb": "exclude_dirs (options): matches 'drafts/**'"}


def test_hidden_directories_never_run_and_say_so(tmp_path):
    _nb(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.ipynb")
    _nb(tmp_path / "a.ipynb")
    found = discover(tmp_path)
    assert _selected(found) == ["a.ipynb"]
    assert "hidden directory" in found.skipped[".ipynb_checkpoints/a-checkpoint.ipynb"]


@pytest.fixture
def services_tree(tmp_path):
    _nb(tmp_path / "python.ipynb")
    _nb(tmp_path / "tap_cone.ipynb")
    _nb(tmp_path / "butler_registry.ipynb")
    _nb(tmp_path / "gafaelfawr.ipynb")  # no metadata: mobu runs it
    _nb(tmp_path / "meta_mobu.ipynb", {"mobu": {"required_applications": ["portal"]}})
    _nb(tmp_path / "meta_bosun.ipynb", {"bosun": {"required_services": ["tap", "nublado"]}})
    return tmp_path


def test_metadata_decides_what_a_notebook_needs_names_do_not_by_default(services_tree):
    found = discover(services_tree, services=["nublado", "tap"])
    assert _selected(found) == [
        "butler_registry.ipynb",
        "gafaelfawr.ipynb",
        "meta_bosun.ipynb",
        "python.ipynb",
        "tap_cone.ipynb",
    ]
    assert found.skipped == {
        "meta_mobu.ipynb": "metadata.mobu.required_applications: needs portal, not deployed"
    }


def test_the_name_convention_applies_when_the_caller_or_the_repo_turns_it_on(services_tree):
    by_caller = discover(services_tree, services=["nublado", "tap"], name_convention=True)
    assert by_caller.skipped["butler_registry.ipynb"] == (
        "file-name convention (SQR-080, turned on by the caller): needs butler, not deployed"
    )
    assert "gafaelfawr.ipynb" in by_caller.skipped
    (services_tree / "bosun.yaml").write_text("name_convention: true\n")
    by_repo = discover(services_tree, services=["nublado", "tap"])
    assert "turned on by bosun.yaml" in by_repo.skipped["butler_registry.ipynb"]
    # Without a list of deployed services nothing is filtered (bosun cannot ask Phalanx).
    assert len(discover(services_tree).selected) == 6


def test_metadata_helpers(services_tree):
    assert required_applications(services_tree / "meta_mobu.ipynb") == (
        {"portal"},
        "metadata.mobu.required_applications",
    )
    assert required_applications(services_tree / "python.ipynb") is None
    assert services_from_name("vo-cutouts_x.ipynb") == {"vo-cutouts"}
    assert services_from_name("tapestry.ipynb") == set()


@pytest.mark.parametrize(
    ("rel", "pattern", "hit"),
    [
        ("a/b/c.ipynb", "a/**", True),
        ("c.ipynb", "**/c.ipynb", True),
        ("a/b/c.ipynb", "**/c.ipynb", True),
        ("a/b/c.ipynb", "a/*.ipynb", False),
        ("a/c.ipynb", "a/?.ipynb", True),
        ("someother/directory/x.ipynb", "someother/directory**", False),
        ("a/c.ipynb", "a/[ab].ipynb", False),
        ("a/b.ipynb", "a/[ab].ipynb", True),
        ("a/b.ipynb", "a/[!a].ipynb", True),
    ],
)
def test_pathlib_glob_patterns(rel, pattern, hit):
    assert matches(rel, pattern) is hit


def test_include_and_exclude_globs_come_after_mobus_rules(services_tree):
    found = discover(services_tree, include=["*_*.ipynb"], exclude=["meta_*"])
    assert _selected(found) == ["butler_registry.ipynb", "tap_cone.ipynb"]
    assert found.skipped["python.ipynb"] == "--include: matches none of *_*.ipynb"
    assert found.skipped["meta_mobu.ipynb"] == "--exclude: matches 'meta_*'"


REPOS = Path(__file__).resolve().parents[1] / "fixtures" / "mobu" / "repos"


def _real_repo(tmp_path, name):
    """Empty notebooks at the real repository's paths, and its real mobu.yaml."""
    src = REPOS / name
    for line in (src / "notebooks.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            _nb(tmp_path / line)
    shutil.copy(src / "mobu.yaml", tmp_path / "mobu.yaml")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "run", "skipped"),
    [("system-test", 23, {"exclude_dirs (mobu.yaml)": 7}),
     ("tutorial-notebooks", 186, {"exclude_dirs (mobu.yaml)": 30,
                                  "collection_rules[0] exclude_union_of (mobu.yaml)": 5})],
)  # fmt: skip
def test_real_repositories_run_what_mobu_runs(tmp_path, name, run, skipped):
    found = discover(_real_repo(tmp_path, name))
    assert len(found.selected) == run
    by_rule = Counter(why.split(":")[0] for why in found.skipped.values())
    assert dict(by_rule) == skipped
