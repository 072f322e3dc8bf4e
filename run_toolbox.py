#!/usr/bin/env python3
"""bosun's toolbox from a terminal: ./run_toolbox.py GROUP COMMAND [OPTIONS] (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from library.venv import use_project_venv  # noqa: E402

use_project_venv(__file__)

from library.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
