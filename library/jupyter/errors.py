"""Typed failures of the hub and lab client.

Every error carries what a post-mortem needs (user, URL path, status, cell) and nothing that
could hold a credential: URLs are stored without their query string, and no header, cookie
or token is ever attached.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from library.errors import one_line


def safe_url(url: str) -> str:
    """URL without query, fragment or userinfo: those are where tokens ride along."""
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class JupyterError(Exception):
    """Base of every failure raised by library.jupyter."""

    def __init__(self, message: str, *, user: str = ""):
        super().__init__(message)
        self.user = user

    def one_line(self) -> str:
        """The message on one line, as logs and event rows want it."""
        return one_line(str(self))


class HubHTTPError(JupyterError):
    """An HTTP request to the hub or a lab got an unexpected status."""

    def __init__(self, method: str, url: str, status: int, reason: str = "", *, user: str = ""):
        self.method = method
        self.url = safe_url(url)
        self.status = status
        self.reason = " ".join(reason.split())[:300]
        detail = f": {self.reason}" if self.reason else ""
        super().__init__(f"{method} {self.url} returned {status}{detail}", user=user)


class SpawnFailed(JupyterError):
    """The hub reported that the lab could not start."""

    def __init__(self, user: str, message: str, progress_log: list[dict[str, Any]] | None = None):
        self.progress_log = list(progress_log or [])
        super().__init__(f"lab of {user} failed to spawn: {message}", user=user)


class SpawnTimeout(JupyterError):
    """The lab was not ready within the spawn timeout."""

    def __init__(
        self,
        user: str,
        timeout: float,
        last_message: str = "",
        progress_log: list[dict[str, Any]] | None = None,
    ):
        self.timeout = timeout
        self.progress_log = list(progress_log or [])
        last = f" (last progress: {last_message})" if last_message else ""
        super().__init__(f"lab of {user} not ready after {timeout:g} s{last}", user=user)


class DeleteTimeout(JupyterError):
    """The lab was still present when the delete timeout ran out."""

    def __init__(self, user: str, timeout: float):
        self.timeout = timeout
        super().__init__(f"lab of {user} still running {timeout:g} s after delete", user=user)


def _where(notebook: str, cell: int | None) -> str:
    """The ``notebook cell N: `` prefix of a message about code that ran there."""
    if notebook and cell is not None:
        return f"{notebook} cell {cell}: "
    if cell is not None:
        return f"cell {cell}: "
    return ""


class ExecutionError(JupyterError):
    """Code raised in the kernel; carries the Python error and where it ran."""

    def __init__(
        self,
        ename: str,
        evalue: str,
        traceback: list[str],
        *,
        user: str = "",
        code: str = "",
        notebook: str = "",
        cell: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ):
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)
        self.code = code
        self.notebook = notebook
        self.cell = cell
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{self.where()}{ename}: {evalue}", user=user)

    def where(self) -> str:
        return _where(self.notebook, self.cell)

    def with_context(self, notebook: str = "", cell: int | None = None) -> ExecutionError:
        """A copy that also names the notebook and cell it came from."""
        return ExecutionError(
            self.ename,
            self.evalue,
            self.traceback,
            user=self.user,
            code=self.code,
            notebook=notebook or self.notebook,
            cell=cell if cell is not None else self.cell,
            stdout=self.stdout,
            stderr=self.stderr,
        )

    def plain_traceback(self) -> str:
        """The traceback without the terminal colour codes IPython puts in it."""
        ansi = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
        return "\n".join(ansi.sub("", line) for line in self.traceback)


class ExecutionTimeout(JupyterError):
    """An execution did not finish within its timeout (the kernel was interrupted)."""

    def __init__(
        self,
        timeout: float,
        *,
        user: str = "",
        code: str = "",
        cell: int | None = None,
        notebook: str = "",
    ):
        self.timeout = timeout
        self.code = code
        self.cell = cell
        self.notebook = notebook
        super().__init__(
            f"{_where(notebook, cell)}execution not finished after {timeout:g} s", user=user
        )


class KernelDied(JupyterError):
    """The kernel died, restarted or its websocket closed while code ran."""

    def __init__(
        self,
        reason: str,
        *,
        user: str = "",
        code: str = "",
        cell: int | None = None,
        notebook: str = "",
    ):
        self.reason = reason
        self.code = code
        self.cell = cell
        self.notebook = notebook
        where = f"{notebook} cell {cell}: " if notebook and cell is not None else ""
        super().__init__(f"{where}kernel died: {reason}", user=user)
