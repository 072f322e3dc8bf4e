"""The `--help` budget: help for bosun and for every group stays free of the heavy libraries.

Module-level imports are the rule in `library/` and `toolbox/`; only the heavy libraries are
imported inside the functions that need them. This test is what keeps that true: it runs each
`--help` in a fresh interpreter under `python -X importtime` and fails, naming the import chain,
when one of the heavy libraries was imported. (How long the imports take is measured in
tests/bench/bench_spine.py, not asserted here.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Libraries whose import costs tens to hundreds of milliseconds (or starts threads): they are
# imported where a command needs them, never on the way to a help text.
HEAVY = (
    "matplotlib",
    "pyarrow",
    "numpy",
    "dask",
    "distributed",
    "aiohttp",
    "papermill",
    "nbclient",
    "pyvo",
    "astropy",
    "jupyter_client",
    "jupyterhub",
    "fastapi",
    "uvicorn",
    "starlette",
    "pandas",
    "locust",
)


def _imported_modules(*args: str) -> tuple[list[str], str]:
    """Top-level names of every module a fresh `run_toolbox.py ARGS` imports, and stdout."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "run_toolbox.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.append(name)
    return names, proc.stdout


def _groups() -> list[str]:
    return sorted(p.stem for p in (ROOT / "toolbox").glob("*.py") if p.stem != "__init__")


def _heavy(names: list[str]) -> list[str]:
    return sorted({n for n in names if n.split(".")[0] in HEAVY})


def test_the_import_listing_is_read():
    # Guards the parser above: without it, an empty listing would pass every case below.
    names, _ = _imported_modules("--help")
    assert "library.cli" in names
    assert "yaml" in names or "typer" in names or "library.toolbox" in names


@pytest.mark.parametrize("args", [("--help",)] + [(g, "--help") for g in _groups()])
def test_help_imports_no_heavy_library(args):
    names, out = _imported_modules(*args)
    assert out.strip(), f"{' '.join(args)} printed no help"
    heavy = _heavy(names)
    assert not heavy, (
        f"run_toolbox.py {' '.join(args)} imported heavy libraries {heavy}: import them inside "
        "the function that needs them"
    )
