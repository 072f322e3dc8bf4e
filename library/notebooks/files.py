"""Reading notebook files with one-line errors for the usual ways they are broken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from library.errors import UserError

if TYPE_CHECKING:
    from nbformat import NotebookNode


def read_notebook(path: Path, as_version: int | None = 4) -> NotebookNode:
    """The notebook at PATH, or a UserError naming the file and what is wrong with it."""
    import nbformat

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such notebook") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a .ipynb file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the notebook ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}:{err.lineno}:{err.colno}: not a notebook: invalid JSON ({err.msg})"
        ) from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise UserError(
            f"{path}: not a notebook: expected a JSON object with 'cells' and 'nbformat'"
        )
    try:
        nb: NotebookNode = nbformat.reads(
            text, as_version=nbformat.NO_CONVERT if as_version is None else as_version
        )
        return nb
    except Exception as err:  # nbformat raises several validation error types
        raise UserError(
            f"{path}: not a valid notebook: {' '.join(str(err).split())[:200]}"
        ) from None


def outside(root: Path, path: Path) -> str | None:
    """Why PATH is not part of the repository at ROOT (a link leading out of it), else None.

    Notebook repositories are not trusted: a notebook that is a symlink to ``/etc/...`` or to
    another checkout is never read, run or rewritten as if it were the repository's own.
    """
    real = Path(path).resolve()
    if real.is_relative_to(Path(root).resolve()):
        return None
    return f"a link to {real}, outside the repository"
