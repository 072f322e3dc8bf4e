"""Where the notebooks come from: a local tree, or a git repository cloned once per run."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from library.errors import UserError
from library.jupyter.errors import safe_url


def is_git_url(source: str) -> bool:
    return source.startswith(("https://", "http://", "git@", "ssh://", "file://", "git://")) or (
        source.endswith(".git") and not Path(source).is_dir()
    )


def checkout(source: str, ref: str | None, cache_dir: Path) -> Path:
    """The notebook tree for SOURCE at REF: a local path as is, a git URL cloned into CACHE_DIR.

    The clone is keyed by URL and ref, so several commands of one run share it.
    """
    if not is_git_url(source):
        path = Path(source)
        if not path.is_dir():
            raise UserError(f"notebook source {source}: not a directory nor a git URL")
        return path.resolve()
    check_ref(ref)
    key = hashlib.sha256(f"{source}@{ref or ''}".encode()).hexdigest()[:16]
    dest = cache_dir / key
    if (dest / ".git").is_dir():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.partial"
    _git(["clone", "--quiet", "--", source, str(tmp)], source)
    if ref:
        _git(["-C", str(tmp), "checkout", "--quiet", ref, "--"], f"{source} at ref {ref}")
    tmp.rename(dest)
    return dest


def check_ref(ref: str | None, what: str = "ref") -> None:
    """UserError unless REF can only be read as a git revision (a branch, tag or commit): refs
    come from flocks, triggers and API requests, and one starting with '-' would be read as an
    option of git (``--upload-pack=COMMAND`` runs COMMAND)."""
    if ref is None:
        return
    if not ref or ref.startswith("-") or any(c.isspace() or not c.isprintable() for c in ref):
        raise UserError(
            f"{what} {ref!r}: not a git branch, tag or commit (it must not start with '-' "
            "nor hold spaces or control characters)"
        )


def _git(args: list[str], what: str) -> None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        raise UserError(f"cannot fetch notebooks from {safe_url(what)}: {last}")


def refresh_checkout(source: str, ref: str | None, cache_dir: Path) -> Path:
    """Fetch SOURCE at REF again into its clone under CACHE_DIR (a standing service's refresh:
    the clone of `checkout` is otherwise kept as it was first made). A local path is as is."""
    if not is_git_url(source):
        return checkout(source, ref, cache_dir)
    check_ref(ref)
    key = hashlib.sha256(f"{source}@{ref or ''}".encode()).hexdigest()[:16]
    dest = cache_dir / key
    if not (dest / ".git").is_dir():
        return checkout(source, ref, cache_dir)
    _git(["-C", str(dest), "fetch", "--quiet", "origin", ref or "HEAD"], source)
    _git(["-C", str(dest), "checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"], source)
    return dest
