"""Notebooks must run green before merge: the changed ones run, all must be clean, JUnit out."""

from __future__ import annotations

import subprocess
from pathlib import Path

from library.errors import UserError
from library.notebooks.source import check_ref


def changed_notebooks(repo: Path, base_ref: str, head_ref: str = "HEAD") -> list[str]:
    """Notebooks added or modified since the merge base of BASE_REF and HEAD_REF (repo-relative).

    Deleted notebooks are left out: there is nothing to run.
    """
    check_ref(base_ref, "--base-ref")
    check_ref(head_ref, "--head-ref")
    proc = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "diff",
            "--name-only",
            "-z",  # names as they are: quoted, "café.ipynb" would not end in .ipynb
            "--diff-filter=ACMR",
            f"{base_ref}...{head_ref}",
            "--",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["git diff failed"])[-1]
        raise UserError(f"--base-ref {base_ref}: cannot diff {repo} against it: {last}")
    return [n for n in proc.stdout.split("\0") if n.endswith(".ipynb")]
