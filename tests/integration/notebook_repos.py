"""Notebooks and git repositories of notebooks, made for the tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def write_notebook(path: Path, *sources: str, tag_first: bool = False) -> Path:
    """A notebook of a markdown title and one code cell per source (the first tagged
    ``parameters`` when asked)."""
    cells = [new_markdown_cell("# test notebook")] + [new_code_cell(s) for s in sources]
    if tag_first:
        cells[1].metadata["tags"] = ["parameters"]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), path)
    return path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def change_repo(repo: Path, unchanged: str, bad: str) -> Path:
    """``main``: one broken notebook named UNCHANGED that the change leaves alone; branch
    ``change``: ``good.ipynb`` and BAD (its third cell fails an assertion)."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@example.org")
    git(repo, "config", "user.name", "ci")
    write_notebook(repo / unchanged, "raise RuntimeError('broken, and not part of the change')")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "change")
    write_notebook(repo / "good.ipynb", "print('ok')")
    write_notebook(repo / bad, "x = 1", "assert x == 2, 'x is not two'")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "change")
    return repo
