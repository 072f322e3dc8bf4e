"""Entry scripts re-run themselves with the project's venv python (made by ``make setup``)."""

import os
import sys
from pathlib import Path


def use_project_venv(script: str) -> None:
    """Re-exec ``script`` under ``.venv/bin/python`` when started by another interpreter."""
    venv = Path(__file__).resolve().parent.parent / ".venv"
    python = venv / "bin" / "python"
    if python.exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(python), [str(python), script, *sys.argv[1:]])
