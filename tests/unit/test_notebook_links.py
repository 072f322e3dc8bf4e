"""Notebook repositories are not trusted: a notebook linked to a file outside the repository is
never discovered, run, cleaned nor rewritten."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from library.errors import CheckFailed
from library.notebooks.clean import check_clean
from library.notebooks.discovery import discover

DIRTY = {
    "cells": [
        {
            "cell_type": "code",
            "source": "print(1)",
            "metadata": {},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
            "execution_count": 1,
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.fixture
def repo_with_links(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "private.ipynb"
    secret.write_text(json.dumps(DIRTY))
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "own.ipynb").write_text(json.dumps(DIRTY))
    (repo / "escape.ipynb").symlink_to(secret)
    (repo / "sub" / "deep.ipynb").symlink_to("../../elsewhere/private.ipynb")
    (repo / "alias.ipynb").symlink_to("own.ipynb")  # inside the repository: fine
    return repo, secret


def test_discovery_skips_links_leading_out_of_the_repository(repo_with_links):
    repo, secret = repo_with_links
    found = discover(repo)
    assert sorted(found.relative(p) for p in found.selected) == ["alias.ipynb", "own.ipynb"]
    for rel in ("escape.ipynb", "sub/deep.ipynb"):
        assert found.skipped[rel] == f"a link to {secret.resolve()}, outside the repository"


def test_check_clean_fix_never_rewrites_a_file_outside_the_repository(repo_with_links):
    repo, secret = repo_with_links
    before = secret.read_bytes()
    dirt = check_clean([repo], fix=True)
    assert secret.read_bytes() == before
    assert {d.path for d in dirt} == {str(repo / "alias.ipynb"), str(repo / "own.ipynb")}
    assert any("a link: not rewritten" in d.what for d in dirt)  # alias.ipynb is a link
    assert check_clean([repo / "own.ipynb"]) == []  # the repository's own file was fixed


def test_check_clean_fix_of_a_named_link_does_not_write_through_it(repo_with_links):
    repo, secret = repo_with_links
    before = secret.read_bytes()
    dirt = check_clean([repo / "escape.ipynb"], fix=True)
    assert secret.read_bytes() == before
    assert any("a link: not rewritten" in d.what for d in dirt)


def test_notebook_ci_refuses_a_changed_notebook_linked_out_of_the_repository(
    repo_with_links, artifact_dir
):
    from library.notebooks.runs import run_changed

    repo, _ = repo_with_links
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "README").write_text("x\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    subprocess.run([*git, "add", "escape.ipynb"], check=True)
    subprocess.run([*git, "commit", "-qm", "a link"], check=True)
    with pytest.raises(CheckFailed, match="escape.ipynb: a link to .*outside the repository"):
        run_changed(repo, "HEAD~1", "HEAD", {}, timeout=60)
    assert "outside the repository" in (artifact_dir / "junit.xml").read_text()


@pytest.mark.parametrize("ref", ["--upload-pack=touch PWNED", "-b", "", "main two", "x\nmain"])
def test_a_ref_that_git_would_read_as_an_option_is_refused(tmp_path, ref):
    """Refs come from flocks, triggers and API requests: `--upload-pack=COMMAND` as the ref of a
    fetch from a local repository ran COMMAND."""
    from library.errors import UserError
    from library.notebooks.ci import changed_notebooks
    from library.notebooks.source import checkout, refresh_checkout

    origin = tmp_path / "origin"
    subprocess.run(["git", "init", "-q", str(origin)], check=True)
    url = origin.as_uri()
    for call in (
        lambda: checkout(url, ref, tmp_path / "cache"),
        lambda: refresh_checkout(url, ref, tmp_path / "cache"),
        lambda: changed_notebooks(origin, ref),
    ):
        with pytest.raises(UserError, match="not a git branch, tag or commit"):
            call()
    assert not (tmp_path / "PWNED").exists() and not (Path.cwd() / "PWNED").exists()


def test_a_source_starting_with_a_dash_is_a_repository_not_an_option(tmp_path):
    from library.errors import UserError
    from library.notebooks.source import checkout

    with pytest.raises(UserError, match=r"cannot fetch notebooks from --upload-pack=x\.git"):
        checkout("--upload-pack=x.git", None, tmp_path / "cache")


def test_a_changed_notebook_with_a_non_ascii_name_is_found(tmp_path):
    """git quotes such names by default ("caf\\303\\251.ipynb"), which then did not end in .ipynb:
    the notebook was silently not checked."""
    from library.notebooks.ci import changed_notebooks

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "base"], check=True)
    for name in ("café.ipynb", "plain.ipynb", "with space.ipynb"):
        (tmp_path / name).write_text(json.dumps(DIRTY))
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "notebooks"], check=True)
    assert changed_notebooks(tmp_path, "HEAD~1") == [
        "café.ipynb",
        "plain.ipynb",
        "with space.ipynb",
    ]
