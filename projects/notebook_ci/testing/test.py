"""notebook_ci steps: prepare (check the settings), test (the changed notebooks), cleanup."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from library import config, env, run

log = logging.getLogger(__name__)


def _settings() -> tuple[str, str, str]:
    from library.errors import UserError

    repo = config.project.get_config("tests.notebook_ci.repo")
    if not repo:
        raise UserError(
            "tests.notebook_ci.repo is not set: give the checkout or git URL to test, "
            "e.g. --var 'tests.notebook_ci.repo: /path/to/checkout'"
        )
    base_ref = config.project.get_config("tests.notebook_ci.base_ref")
    head_ref = config.project.get_config("tests.notebook_ci.head_ref")
    return str(repo), str(base_ref), str(head_ref)


def _checkout(repo: str, head_ref: str) -> tuple[Path, str]:
    """The local checkout holding the change, and the head ref to diff inside it."""
    from library.errors import UserError
    from library.notebooks.source import checkout, is_git_url

    if not is_git_url(repo):
        path = Path(repo).expanduser()
        if not (path / ".git").exists():
            raise UserError(f"tests.notebook_ci.repo {repo}: not a git checkout nor a git URL")
        return path.resolve(), head_ref
    # A full clone (the base ref must be reachable), the change checked out.
    top = Path(os.environ.get("ARTIFACT_DIR") or env.artifact_dir())
    clone = checkout(repo, None if head_ref == "HEAD" else head_ref, top / "_cache" / "git")
    return clone, "HEAD"


def prepare():
    repo, base_ref, head_ref = _settings()
    log.info("notebook_ci: notebooks of %s changed between %s and %s", repo, base_ref, head_ref)


def test():
    repo, _base_ref, head_ref = _settings()
    path, head = _checkout(repo, head_ref)
    run.run_toolbox_from_config("notebook", "ci", extra={"repo": path, "head_ref": head})


def cleanup():
    # Nothing to undo: notebook ci runs copies of the notebooks and leaves the checkout as it is.
    pass
