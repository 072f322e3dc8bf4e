#!/usr/bin/env python3
"""bosun's toolbox from a terminal: ./run_toolbox.py GROUP COMMAND [OPTIONS] (see --help)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"

# Prefer the project's venv (made by `make setup`) over whatever python3 is first on PATH.
if (VENV / "bin" / "python").exists() and Path(sys.prefix).resolve() != VENV.resolve():
    os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])

sys.path.insert(0, str(ROOT))

from library.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
