"""Labs run as an unprivileged system user that cannot read the sandbox's secrets.

The hub runs as root here (no systemd, a root container), and so did its labs: any notebook
could read the orchestrator token from the state dir. When the sandbox runs as root it now
creates one system user, `LAB_USER`, and the spawner drops every lab to it (JupyterHub's
`set_user_setuid`). The state dir is locked down so that user can only traverse it: secrets
are 0600 root, the hub's dir 0700, and only each lab's home and runtime dirs belong to it.

DaCHS's database credentials under ``/var/gavo/etc`` lose their world-read bit too.

The lab user must be able to run Python. When the project's interpreter lives under a private
directory (``/root/.pyenv``), labs use the system's interpreter of the same minor version over
the project venv's site-packages (a venv-shaped dir in the state dir: `lab_python`).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from library.errors import UserError
from library.sandbox import state as st

log = logging.getLogger(__name__)

LAB_USER = "bosun-lab"
# Modes of what the state dir holds, applied at every `up`: the lab user may traverse the root
# (to reach its home and runtime dirs) but read nothing else.
_MODES = {"": 0o711, "hub": 0o700, "logs": 0o700, "pids": 0o700, "home": 0o711, "rt": 0o711}
_SECRETS = ("orchestrator.token", "hub/jupyterhub_cookie_secret", "hub/jupyterhub.sqlite")


def wanted() -> bool:
    """Dropping privileges needs root; a sandbox started by another user runs labs as it."""
    return os.geteuid() == 0


def ensure_user(name: str = LAB_USER) -> int:
    """The uid of system user NAME, created (no home, no login shell) when missing."""
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--user-group", "--no-create-home"]
    cmd += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise UserError(
            f"cannot create the lab user {name} ({' '.join(cmd)}): {result.stderr.strip()}"
        )
    log.info("created the system user %s that labs run as", name)
    return pwd.getpwnam(name).pw_uid


def secure_state_dir(layout: st.Layout) -> None:
    """Secrets 0600 root, private dirs 0700: the lab user reaches only its own dirs."""
    for rel, mode in _MODES.items():
        path = layout.root / rel if rel else layout.root
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    for rel in _SECRETS:
        path = layout.root / rel
        if path.exists():
            os.chown(path, 0, 0)
            os.chmod(path, 0o600)


# DaCHS's database credentials (the Debian package leaves them readable by everyone): only its
# own user and group need them.
GAVO_SECRETS = [
    Path("/var/gavo/etc") / name for name in ("feed", "dsn", "trustedquery", "untrustedquery")
]


def lock_gavo_secrets() -> None:
    """Take other users' read access off DaCHS's credential files (the lab user is "other")."""
    for path in GAVO_SECRETS:
        if path.is_file() and path.stat().st_mode & 0o007:
            os.chmod(path, path.stat().st_mode & ~0o007)


def _runs_as(user: str, python: Path) -> bool:
    """True when USER can start PYTHON and import the lab server from it."""
    try:
        result = subprocess.run(
            [str(python), "-c", "import jupyterhub.singleuser, ipykernel"],
            user=user,
            group=user,
            extra_groups=[],
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def lab_python(layout: st.Layout, user: str = LAB_USER) -> Path:
    """A Python interpreter USER can run, with the project venv's packages."""
    venv_python = Path(sys.prefix) / "bin" / "python3"
    if _runs_as(user, venv_python):
        return venv_python
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = Path("/usr/bin") / version
    if not system_python.exists():
        raise UserError(
            f"labs cannot run as {user}: the project's Python ({sys.executable}) is in a "
            f"directory {user} cannot enter, and /usr/bin/{version} is missing: run "
            "`make system-deps`"
        )
    # A venv-shaped dir: the system interpreter with the project venv's site-packages (same
    # minor version, so the same ABI).
    root = layout.root / "labpy"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "lib").mkdir(exist_ok=True)
    link = root / "bin" / "python3"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(system_python)
    site = root / "lib" / version / "site-packages"
    site.parent.mkdir(parents=True, exist_ok=True)
    venv_site = Path(sys.prefix) / "lib" / version / "site-packages"
    if site.is_symlink() or site.exists():
        site.unlink()
    site.symlink_to(venv_site)
    (root / "pyvenv.cfg").write_text(
        f"home = {system_python.parent}\ninclude-system-site-packages = false\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n"
    )
    for path in (root, root / "bin", root / "lib", site.parent):
        os.chmod(path, 0o755)
    if not _runs_as(user, link):
        raise UserError(
            f"labs cannot run as {user}: neither {venv_python} nor {link} can start the lab "
            f"server as that user; check that {venv_site} is readable by others"
        )
    return link


def prepare(layout: st.Layout) -> dict[str, str]:
    """The environment the hub config reads to drop labs' privileges ({} when not root)."""
    if not wanted():
        return {}
    ensure_user()
    secure_state_dir(layout)
    lock_gavo_secrets()
    python = lab_python(layout)
    return {"BOSUN_SANDBOX_LAB_USER": LAB_USER, "BOSUN_SANDBOX_LAB_PYTHON": str(python)}
