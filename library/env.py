"""The current artifact directory, and numbered sub-directories (``NNN__name``).

``env.ARTIFACT_DIR`` is the directory the running code writes into. It comes from
``$ARTIFACT_DIR`` or defaults to ``./artifacts/<UTC timestamp>``, and ``NextArtifactDir`` moves
it into a new numbered child for the duration of a block. The value lives in a context
variable, so threads started by ``run.Parallel`` and asyncio tasks each see their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from library.errors import UserError

_current: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "bosun_artifact_dir", default=None
)
_NUMBERED = re.compile(r"^(\d{3,})__")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@-]+")


def __getattr__(name: str) -> Path:
    # Module attribute for TOPSAIL-style code: ``env.ARTIFACT_DIR``.
    if name == "ARTIFACT_DIR":
        return artifact_dir()
    raise AttributeError(f"module 'library.env' has no attribute {name!r}")


def _default_base() -> Path:
    from_env = os.environ.get("ARTIFACT_DIR")
    if from_env:
        return Path(from_env).absolute()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    path = Path("artifacts", stamp).absolute()
    # Exported so that child processes (steps, shell commands) write into the same tree.
    os.environ["ARTIFACT_DIR"] = str(path)
    return path


def artifact_dir() -> Path:
    """The current artifact directory, created on first use."""
    path = _current.get()
    if path is None:
        path = _default_base()
        _current.set(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"ARTIFACT_DIR {path}: cannot create it ({err.strerror}); "
            "set ARTIFACT_DIR to a writable directory"
        ) from None
    if not os.access(path, os.W_OK):
        raise UserError(
            f"ARTIFACT_DIR {path}: not writable; set ARTIFACT_DIR to a writable directory"
        )
    return path


@contextlib.contextmanager
def using_artifact_dir(path: str | Path) -> Iterator[Path]:
    """Make ``path`` the current artifact directory inside the block."""
    path = Path(path).absolute()
    token = _current.set(path)
    try:
        yield artifact_dir()
    finally:
        _current.reset(token)


def safe_name(name: str) -> str:
    """A file-name-safe version of ``name`` that cannot leave its parent directory.

    Input-derived names (flock names, notebook paths, preset names) go through this before they
    become a path: separators, ``..``, NUL and other oddities become ``_``.
    """
    cleaned = _UNSAFE.sub("_", str(name)).strip("._")
    cleaned = cleaned.replace("..", "_")
    return cleaned[:120] or "unnamed"


def next_dir(name: str, parent: str | Path | None = None) -> Path:
    """Create ``parent/NNN__name`` with the next free number and return it.

    Numbering is gap-free and unique across threads and processes: the scan and the mkdir
    happen under an exclusive ``flock`` on the parent directory itself (a lock per open file
    description, so threads of one process exclude each other too).
    """
    parent = Path(parent) if parent is not None else artifact_dir()
    parent.mkdir(parents=True, exist_ok=True)
    name = safe_name(name)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        highest = -1
        with os.scandir(parent) as entries:
            for entry in entries:
                match = _NUMBERED.match(entry.name)
                if match:
                    highest = max(highest, int(match.group(1)))
        path = parent / f"{highest + 1:03d}__{name}"
        path.mkdir()
        return path
    finally:
        os.close(fd)  # closing releases the lock


class NextArtifactDir:
    """``with NextArtifactDir("name") as path:`` creates ``NNN__name`` and makes it current."""

    def __init__(self, name: str, parent: str | Path | None = None):
        self.name = name
        self.parent = parent
        self.path: Path | None = None
        self._token: contextvars.Token[Path | None] | None = None

    def __enter__(self) -> Path:
        self.path = next_dir(self.name, self.parent)
        self._token = _current.set(self.path)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
