"""Debian packages the sandbox and the test suite need; run as `python -m library.sandbox.system`.

Idempotent and non-interactive. Nothing slow happens when every package is installed: one
`dpkg-query` decides that. DaCHS's install script needs a running PostgreSQL and nothing starts
one without systemd, so PostgreSQL (with pgSphere and q3c) is installed and its cluster started
before `gavodachs2-server`; `dpkg --configure -a` repairs a previous attempt that failed there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PG_VERSION = "15"
PG_CLUSTER = "main"
POSTGRES = ["postgresql", f"postgresql-{PG_VERSION}-pgsphere", f"postgresql-{PG_VERSION}-q3c"]
DACHS = ["gavodachs2-server"]
# nginx: the fixed-cost target of the HTTP benchmarks, with the echo module for its delayed
# endpoint (echo_sleep); chromium: the report tests; git-lfs: the GitLFS business's client;
# python3: the interpreter unprivileged labs run when the venv's is out of their reach
# (library/sandbox/labuser.py).
EXTRAS = ["nginx", "libnginx-mod-http-echo", "chromium", "git-lfs", "python3"]
ALL_PACKAGES = POSTGRES + DACHS + EXTRAS

_APT = [
    "apt-get",
    "-y",
    "-q",
    # Wait for a concurrent apt/dpkg rather than failing on its lock.
    "-o",
    "DPkg::Lock::Timeout=600",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
]


def skip_reason() -> str | None:
    """Why this machine cannot get the packages installed here (None when it can)."""
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        return "not a Debian system (no /etc/debian_version or apt-get)"
    if os.geteuid() != 0:
        return "not running as root"
    return None


def package_states(packages: list[str]) -> dict[str, str]:
    """Two-letter dpkg status per package ('ii' = installed; '' = unknown to dpkg)."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *packages],
        capture_output=True,
        text=True,
    )
    states = dict.fromkeys(packages, "")
    for line in result.stdout.splitlines():
        name, _, abbrev = line.partition(" ")
        if name in states:
            states[name] = abbrev.strip()
    return states


def missing(packages: list[str]) -> list[str]:
    states = package_states(packages)
    return [p for p in packages if states[p] != "ii"]


def _run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
    subprocess.run(cmd, check=True, env=env)


def postgres_online() -> bool:
    result = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    )
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields[:2] == [PG_VERSION, PG_CLUSTER] and len(fields) > 3:
            return fields[3].startswith("online")
    return False


class Installer:
    """Installs what is missing, in the order DaCHS needs, printing each step."""

    def __init__(self) -> None:
        self.updated = False
        self.started_postgres = False

    def install(self, packages: list[str]) -> None:
        todo = missing(packages)
        if not todo:
            return
        if not self.updated:
            _run(["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600", "update"])
            self.updated = True
        print(f"installing {' '.join(todo)}", flush=True)
        _run([*_APT, "install", *todo])

    def start_postgres(self) -> None:
        if postgres_online():
            return
        _run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "start"])
        self.started_postgres = True

    def stop_postgres_if_started(self) -> None:
        # Leave the machine as found: the sandbox starts PostgreSQL itself when it needs it.
        if self.started_postgres:
            _run(["pg_ctlcluster", PG_VERSION, PG_CLUSTER, "stop"])


def needs_repair() -> bool:
    """True when dpkg holds half-installed or unconfigured packages (an interrupted install)."""
    audit = subprocess.run(["dpkg", "--audit"], capture_output=True, text=True, check=False)
    return bool(audit.stdout.strip())


def ensure(packages: list[str] = ALL_PACKAGES) -> list[str]:
    """Install the missing ones among PACKAGES; return what was missing."""
    todo = missing(packages)
    broken = needs_repair() if todo else False
    if not todo:
        return []
    installer = Installer()
    try:
        installer.install([p for p in POSTGRES if p in packages])
        dachs = [p for p in DACHS if p in packages]
        if broken or missing(dachs):
            if not missing(["postgresql"]):
                installer.start_postgres()
            if broken:
                print("repairing a previous, interrupted installation", flush=True)
                _run(["dpkg", "--configure", "-a"])
            installer.install(dachs)
        installer.install([p for p in packages if p not in POSTGRES + DACHS])
    finally:
        installer.stop_postgres_if_started()
    still = missing(packages)
    if still:
        raise SystemExit(f"system-deps: still not installed after apt-get: {' '.join(still)}")
    return todo


def main(argv: list[str] | None = None) -> int:
    packages = list(argv if argv is not None else sys.argv[1:]) or ALL_PACKAGES
    reason = skip_reason()
    if reason:
        print(f"system-deps: skipping the Debian packages ({' '.join(packages)}): {reason}")
        return 0
    installed = ensure(packages)
    if installed:
        print(f"system-deps: installed {' '.join(installed)}")
    else:
        print(f"system-deps: all {len(packages)} Debian packages already installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
