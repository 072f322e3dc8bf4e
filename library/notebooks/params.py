"""Notebook parameters: ``key=value`` strings, and the code cell that sets them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from library import yamlio
from library.errors import UserError

if TYPE_CHECKING:
    from nbformat import NotebookNode


def parse_parameters(items: list[str] | None, *, option: str = "--parameters") -> dict[str, Any]:
    """``["n=3", "name=x"]`` -> ``{"n": 3, "name": "x"}``; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"{option} {item!r}: expected NAME=VALUE with NAME a Python identifier")
        try:
            value = yamlio.loads(raw, f"{option} {item!r}") if raw.strip() else ""
        except UserError:
            value = raw
        out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else raw
    return out


def parameters_code(params: dict[str, Any]) -> str:
    """The source of the cell that assigns PARAMS, as papermill injects it."""
    lines = ["# Parameters"]
    lines += [f"{k} = {v!r}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def code_cells_with_parameters(nb: NotebookNode, params: dict[str, Any]) -> list[tuple[int, str]]:
    """(1-based cell number, source) of each non-empty code cell, parameters in place.

    The assignments run right after the cell tagged ``parameters`` (before the first code cell
    when there is none), like papermill's injected cell; they carry the number of the cell
    they follow, or 0 when they come first.
    """
    cells = []
    injected = not params
    tagged = any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
    if params and not tagged:
        cells.append((0, parameters_code(params)))
        injected = True
    for i, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if source.strip():
            cells.append((i, source))
        if not injected and "parameters" in cell.get("metadata", {}).get("tags", []):
            cells.append((i, parameters_code(params)))
            injected = True
    return cells
