"""Errors that reach a person: one line naming the culprit and what to do."""

import errno
import re


class UserError(Exception):
    """Bad input or an expected failure; its message is shown as is, with no traceback.

    The message is one line that names the file, key or argument at fault and, when there is
    one, what to do about it.
    """

    exit_code = 2

    def __str__(self) -> str:
        # Enforce the one-line contract even when a caller embeds a multi-line service message.
        return " ".join(super().__str__().split("\n")).strip()


class ConfigError(UserError):
    """A project config, preset or override that cannot be applied."""


class CheckFailed(UserError):
    """A check ran and found the platform wanting (exit 1, not a usage error)."""

    exit_code = 1


def storage_error_message(err: OSError) -> str | None:
    """One line for a write that failed for lack of space or permission, else None."""
    if err.errno not in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
    ):
        return None
    where = err.filename or "the artifact dir"
    return (
        f"cannot write {where}: {err.strerror}; free some space or set ARTIFACT_DIR to a "
        "writable directory (what was written before is kept)"
    )


def one_line(value: object, limit: int | None = None) -> str:
    """`value` as one line for a person: the one helper behind error lines, logs and events.

    Runs of whitespace (newlines, tabs) become one space; other control characters (NUL, ESC of
    a terminal sequence) are shown as `\\xNN`, so a message cannot redraw a terminal or break
    a file format. Longer than `limit` characters: cut, ending in "…". An exception shows its
    message; one that is not a UserError is prefixed by its class (`KeyError: 'x'` says more
    than `'x'`), Ctrl-C reads "interrupted".
    """
    if isinstance(value, KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(value).split())
    if isinstance(value, BaseException) and not isinstance(value, UserError):
        name = type(value).__name__
        text = f"{name}: {text}" if text else name
    # `re` keeps the compiled pattern in its own cache.
    text = re.sub("[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text
