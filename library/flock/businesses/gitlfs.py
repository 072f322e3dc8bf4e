"""GitLFS: mobu's Git-LFS check with the real git and git-lfs clients.

One execution, in a fresh temporary directory, as mobu's ``GitLFSBusiness`` does it: create an
``origin`` repository whose ``.lfsconfig`` names the LFS read URL; clone it to ``checkout``,
install LFS there, track ``assets/*`` and add ``assets/UUID`` (a new UUID each time), set
``lfs.url`` to the write URL with the monkey's token in a credential store, and push; check
that ``origin`` now holds an LFS pointer, not the content; clone ``origin`` again with LFS
installed and check that ``assets/UUID`` came back from the LFS server with the UUID.

Each step is an event row (operation ``git_lfs_step``, target the step's name, as mobu's
spans) and the whole check is the main row (operation ``git_lfs``). git runs with its own
global config (``GIT_CONFIG_GLOBAL``, no system config) and only PATH, HOME, LANG and GIT_*
from the environment, so neither a developer's git setup nor the token leaks in or out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

from library.flock.businesses.base import Business
from library.flock.options import GitLFSOptions

README = "# Git-LFS test repo\nTest repository for git-LFS checking\n"
GITATTRIBUTES = "assets/* filter=lfs diff=lfs merge=lfs -text\n"
# mobu's packaged gitconfig (src/mobu/data/gitlfs/gitconfig): pushing into origin's checked-out
# branch must be allowed, and the check takes no LFS locks.
GITCONFIG = """[user]
        email             = gituser@example.com
        name              = Git User

[receive]
        denyCurrentBranch = ignore

[lfs]
        locksverify       = false
"""
LFS_POINTER_FIRST_LINE = "version https://git-lfs.github.com/spec/v1"
GIT_TIMEOUT_S = 300.0
# `git rev-parse --local-env-vars`: the variables that point git at a repository.
_GIT_LOCAL = frozenset(
    [
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
    ]
)


class GitError(Exception):
    """A git command failed (its stderr, token-free, is the message)."""


class ComparisonError(Exception):
    """A file did not hold what the check expected."""


class Git:
    """git in one repository with a given global config, as an asyncio subprocess."""

    def __init__(self, repo: Path, config: Path) -> None:
        self.repo = repo
        self.config = config

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        # GIT_* settings pass (GIT_SSL_CAINFO, GIT_TRACE...), but not those that say which
        # repository git works in: set inside a git hook, they would turn every command here
        # onto the caller's repository.
        env.update(
            {k: v for k, v in os.environ.items() if k.startswith("GIT_") and k not in _GIT_LOCAL}
        )
        env["GIT_CONFIG_GLOBAL"] = str(self.config)
        env["GIT_CONFIG_SYSTEM"] = ""
        env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password on a terminal
        return env

    async def __call__(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=self.repo,
            env=self.env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group: git runs helpers (git-lfs, git-remote-http) that outlive
            # a killed git and go on writing into the scratch directory as it is removed.
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(GIT_TIMEOUT_S):
                out, err = await proc.communicate()
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        if proc.returncode != 0:
            message = " ".join(err.decode("utf-8", "replace").split())[:300]
            raise GitError(f"git {args[0]} exited {proc.returncode}: {message}")
        return out.decode("utf-8", "replace")


class GitLFS(Business[GitLFSOptions]):
    """mobu's GitLFS business (options ``lfs_read_url``, ``lfs_write_url``)."""

    options: GitLFSOptions

    async def startup(self) -> None:
        if shutil.which("git") is None or shutil.which("git-lfs") is None:
            raise GitError("git and git-lfs must be installed (Debian: git, git-lfs)")
        self.token = await self.ctx.shared.token_for(self.ctx.user, self.ctx.scopes)

    async def execute(self) -> bool:
        with self.ctx.timed("git_lfs", target=self.options.lfs_write_url):
            await self.check()
        self.executions += 1
        return False

    async def check(self) -> None:
        self.uuid = uuid.uuid4().hex
        # Scratch repositories, removed when the check ends (as mobu's): nothing of them is a
        # result, so they stay out of the artifact dir; the events say what happened.
        with tempfile.TemporaryDirectory(prefix="bosun-gitlfs-") as tmp:
            work = Path(tmp)
            config = work / "gitconfig"
            config.write_text(GITCONFIG)
            steps = (
                ("create origin repo", self._create_origin),
                ("create checkout repo", self._create_checkout),
                ("add LFS-tracked assets", self._add_assets),
                ("push LFS-tracked assets", self._push),
                ("verify origin contents", self._verify_origin),
                ("create clone repo with asset", self._create_clone),
                ("verify asset contents", self._verify_clone),
            )
            for name, step in steps:
                with self.ctx.timed("git_lfs_step", target=name):
                    await step(work, config)

    async def _create_origin(self, work: Path, config: Path) -> None:
        origin = work / "origin"
        origin.mkdir()
        git = Git(origin, config)
        await git("init", "--initial-branch=main", str(origin))
        (origin / "README.md").write_text(README)
        # Written by git, which quotes the URL: a flock's value stays one value in the file.
        await git("config", "--file", ".lfsconfig", "lfs.url", self.options.lfs_read_url)
        await git("add", "README.md")
        await git("add", ".lfsconfig")
        await git("commit", "-am", "Initial commit")

    async def _create_checkout(self, work: Path, config: Path) -> None:
        checkout = work / "checkout"
        checkout.mkdir()
        await Git(checkout, config)("clone", str(work / "origin"), str(checkout))

    async def _add_assets(self, work: Path, config: Path) -> None:
        checkout = work / "checkout"
        git = Git(checkout, config)
        await git("lfs", "install", "--local")
        (checkout / ".gitattributes").write_text(GITATTRIBUTES)
        await git("add", ".gitattributes")
        await git("config", "--local", "lfs.url", self.options.lfs_write_url)
        (checkout / "assets").mkdir()
        (checkout / "assets" / "UUID").write_text(self.uuid)
        await git("add", "assets/UUID")
        await git("commit", "-am", "Add git-lfs tracked assets")

    async def _push(self, work: Path, config: Path) -> None:
        git = Git(work / "checkout", config)
        credentials = work / ".git_credentials"
        url = urlsplit(self.options.lfs_write_url)
        await git(
            "config",
            "--local",
            f"credential.{url.scheme}://{url.netloc}.helper",
            f"store --file {shlex.quote(str(credentials))}",  # git runs helpers via the shell
        )
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            # The store's lines are URLs: the token is percent-encoded as one userinfo part.
            f.write(f"{url.scheme}://gituser:{quote(self.token or '', safe='')}@{url.netloc}\n")
        try:
            await git("push", "origin", "main")
        finally:
            credentials.unlink(missing_ok=True)

    async def _verify_origin(self, work: Path, config: Path) -> None:
        origin = work / "origin"
        # The push moved origin's branch under its work tree (denyCurrentBranch = ignore).
        await Git(origin, config)("reset", "--hard")
        _expect("README.md", README, (origin / "README.md").read_text())
        first = (origin / "assets" / "UUID").read_text().split("\n")[0]
        _expect("origin assets/UUID (an LFS pointer)", LFS_POINTER_FIRST_LINE, first)

    async def _create_clone(self, work: Path, config: Path) -> None:
        clone = work / "clone"
        clone.mkdir()
        # LFS installed in a throwaway global config before cloning, so the clone's checkout
        # runs the smudge filter and fetches the asset (mobu's order).
        global_config = work / "gitconfig-clone"
        global_config.write_text(GITCONFIG)
        git = Git(clone, global_config)
        await git("lfs", "install")
        await git("clone", str(work / "origin"), "-b", "main", str(clone))
        await git("pull")

    async def _verify_clone(self, work: Path, config: Path) -> None:
        got = (work / "clone" / "assets" / "UUID").read_text()
        _expect("cloned assets/UUID", self.uuid, got)


def _expect(what: str, expected: str, received: str) -> None:
    if expected != received:
        raise ComparisonError(f"{what}: expected {expected[:80]!r}, got {received[:80]!r}")
