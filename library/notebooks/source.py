"""Where the notebooks come from: a local tree, or a git repository cloned once per run."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def is_git_url(source: str) -> bool:
    return source.startswith(("https://", "http://", "git@", "ssh://", "file://", "git://")) or (
        source.endswith(".git") and not Path(source).is_dir()
    )


def checkout(source: str, ref: str | None, cache_dir: Path) -> Path:
    """The notebook tree for SOURCE at REF: a local path as is, a git URL cloned into CACHE_DIR.

    The clone is keyed by URL and ref, so several commands of one run share it.
    """
    from library.errors import UserError

    if not is_git_url(source):
        path = Path(source)
        if not path.is_dir():
            raise UserError(f"notebook source {source}: not a directory nor a git URL")
        return path.resolve()
    key = hashlib.sha256(f"{source}@{ref or ''}".encode()).hexdigest()[:16]
    dest = cache_dir / key
    if (dest / ".git").is_dir():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.partial"
    _git(["clone", "--quiet", source, str(tmp)], source)
    if ref:
        _git(["-C", str(tmp), "checkout", "--quiet", ref], f"{source} at ref {ref}")
    tmp.rename(dest)
    return dest


def _git(args: list[str], what: str) -> None:
    from library.errors import UserError
    from library.jupyter.errors import safe_url

    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        raise UserError(f"cannot fetch notebooks from {safe_url(what)}: {last}")
