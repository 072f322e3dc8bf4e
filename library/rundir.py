"""One run owns its artifact dir: a lock naming the owner, and room kept for its last records.

Two ``ci/run`` writing into one dir at once mix each other's steps, JUnit cases and exit code;
the lock refuses the second in one line naming the dir and the owner's pid (sequential runs into
one dir, TOPSAIL's ``prepare`` then ``test``, stay allowed). A disk that fills during a run must
not cost the run its ``exit_code``, ``junit.xml`` and ``run.json``: a small reserve file is
written first and given back just before those records are written.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from library import artifacts
from library.errors import UserError

log = logging.getLogger(__name__)

LOCK = artifacts.RUN_LOCK
RESERVE = ".bosun-reserve"
RESERVE_BYTES = 32 * 1024  # JUnit, run.json, exit_code, FAILURES of an ordinary run fit in it


@contextlib.contextmanager
def owned(root: Path) -> Iterator[None]:
    """Hold ROOT's run lock for the block; UserError naming the owner when another run has it."""
    path = root / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(
                f"ARTIFACT_DIR {root}: another ci/run (pid {owner}) is writing there; wait "
                "for it to end or set ARTIFACT_DIR to a directory of this run's own"
            ) from None
        except OSError as err:
            # A file system without locks (some network mounts): the run goes on, unguarded.
            log.warning("%s: cannot lock it (%s); nothing stops a second run", path, err.strerror)
        with contextlib.suppress(OSError):  # the pid is a courtesy to the next run's message
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def reserve(root: Path) -> None:
    """Set RESERVE_BYTES aside for the run's last records (best effort: a full disk keeps none)."""
    try:
        with (root / RESERVE).open("wb") as out:
            out.write(b"\0" * RESERVE_BYTES)
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        log.warning("no room kept for the run's last records: %s", err.strerror)
        with contextlib.suppress(OSError):
            (root / RESERVE).unlink()


def release(root: Path) -> None:
    """Give the reserve back (just before the last records are written)."""
    with contextlib.suppress(FileNotFoundError):
        (root / RESERVE).unlink()
