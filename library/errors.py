"""Errors that reach a person: one line naming the culprit and what to do."""


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
    import errno

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
