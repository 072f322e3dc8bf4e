"""Committed notebooks carry no outputs, execution counts or widget state."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from library.notebooks.files import outside, read_notebook

if TYPE_CHECKING:
    from nbformat import NotebookNode

log = logging.getLogger(__name__)


@dataclass
class Dirt:
    path: str
    cell: int | None  # 1-based position in the notebook; None for notebook-level state
    what: str

    def __str__(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "notebook"
        return f"{self.path}: {where}: {self.what}"


def find_dirt(nb: NotebookNode, path: str) -> list[Dirt]:
    found = []
    for i, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            found.append(Dirt(path, i, f"{len(cell['outputs'])} output(s)"))
        if cell.get("execution_count") is not None:
            found.append(Dirt(path, i, f"execution count {cell['execution_count']}"))
    if "widgets" in nb.metadata:
        found.append(Dirt(path, None, "widget state in metadata.widgets"))
    return found


def scrub(nb: NotebookNode) -> None:
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb.metadata.pop("widgets", None)


def check_clean(paths: list[Path], fix: bool = False) -> list[Dirt]:
    """Dirt found in the notebooks at PATHS (directories are searched); FIX scrubs in place."""
    import nbformat

    found = []
    for path in _expand(paths):
        nb = read_notebook(path, as_version=None)
        dirt = find_dirt(nb, str(path))
        if dirt and fix:
            if path.is_symlink():
                # --fix rewrites files, never what a link points at (maybe outside the repo).
                found.append(Dirt(str(path), None, "a link: not rewritten (fix its target)"))
            else:
                scrub(nb)
                nbformat.write(nb, path)
        found.extend(dirt)
    return found


def _expand(paths: list[Path]) -> list[Path]:
    """The notebooks named, and those under the directories named; a link from a directory to
    a notebook outside it is left out (logged), never read nor rewritten."""
    out = []
    for p in paths:
        if p.is_dir():
            for q in sorted(p.rglob("*.ipynb")):
                if any(part.startswith(".") for part in q.relative_to(p).parts):
                    continue
                why = outside(p, q)
                if why:
                    log.warning("skip %s: %s", q, why)
                    continue
                out.append(q)
        else:
            out.append(p)
    return out
