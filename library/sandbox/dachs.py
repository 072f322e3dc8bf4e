"""The sandbox's TAP service: GAVO DaCHS on the machine's PostgreSQL, serving the synthetic
catalogue of `catalogue.py` on 127.0.0.1.

Prerequisites (installed by `make setup`, see FACTS.md for the order that works): Debian,
root, PostgreSQL with pgSphere and q3c, and the `gavodachs2-server` package. DaCHS is a
system service with one configuration (/etc/gavo.rc) and one database, so there is one DaCHS
per machine; `up` points it at our port and resource. `down` stops DaCHS, and PostgreSQL only
when `up` was the one that started it (recorded in the state dir).
"""

from __future__ import annotations

import configparser
import contextlib
import grp
import json
import logging
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from library.errors import UserError
from library.sandbox import catalogue, images
from library.sandbox.state import port_is_listening, tail, wait_until

log = logging.getLogger(__name__)

RESOURCE = "sandbox"  # resdir under /var/gavo/inputs, and the ADQL schema name
RD_DIR = Path(__file__).resolve().parent / "dachs_rd"
GAVO_RC = Path("/etc/gavo.rc")
GAVO_ROOT = Path("/var/gavo")
WEB_PID = GAVO_ROOT / "state" / "web.pid"
DACHS_LOGS = (GAVO_ROOT / "logs" / "dcErrors", GAVO_ROOT / "logs" / "dcInfos")
DACHS_USER = "dachsroot"
DATABASE = "gavo"
PROBE_ADQL = f"SELECT TOP 1 objectId FROM {RESOURCE}.objects"
SETUP_HINT = "run make setup (as root on Debian)"


def _dir(state_dir: Path) -> Path:
    return Path(state_dir) / "dachs"


def _state_file(state_dir: Path) -> Path:
    return _dir(state_dir) / "dachs.json"


def _log_file(state_dir: Path) -> Path:
    return Path(state_dir) / "logs" / "dachs.log"


def _read_state(state_dir: Path) -> dict:
    try:
        return json.loads(_state_file(state_dir).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_state(state_dir: Path, data: dict) -> None:
    _dir(state_dir).mkdir(parents=True, exist_ok=True)
    _state_file(state_dir).write_text(json.dumps(data, indent=2) + "\n")


# --- can DaCHS run here? -----------------------------------------------------------------


def _cluster() -> tuple[str, str] | None:
    """(version, name) of the first PostgreSQL cluster, from pg_lsclusters."""
    if not shutil.which("pg_lsclusters"):
        return None
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            return fields[0], fields[1]
    return None


def unavailable_reason() -> str | None:
    """None when DaCHS can run here, otherwise one line saying why and what to do."""
    if not Path("/etc/debian_version").is_file():
        return "the TAP service needs Debian packages (GAVO DaCHS); this machine is not Debian"
    if os.geteuid() != 0:
        return "the TAP service (GAVO DaCHS) must be started as root; run as root"
    if not shutil.which("dachs"):
        return f"gavodachs2-server is not installed: {SETUP_HINT}"
    cluster = _cluster()
    if cluster is None:
        return f"no PostgreSQL cluster found (pg_lsclusters): {SETUP_HINT}"
    ext = Path(f"/usr/share/postgresql/{cluster[0]}/extension")
    for control, package in (("q3c.control", "q3c"), ("pg_sphere.control", "pgsphere")):
        if not (ext / control).is_file():
            return f"postgresql-{cluster[0]}-{package} is not installed: {SETUP_HINT}"
    return None


# --- PostgreSQL --------------------------------------------------------------------------


def _postgres_running(cluster: tuple[str, str]) -> bool:
    return (
        subprocess.run(["pg_ctlcluster", *cluster, "status"], capture_output=True).returncode == 0
    )


def _postgres_pid(cluster: tuple[str, str]) -> int | None:
    pid_file = Path(f"/var/lib/postgresql/{cluster[0]}/{cluster[1]}/postmaster.pid")
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _psql(sql: str) -> str:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-d", DATABASE, "-tAc", sql],
        capture_output=True,
        text=True,
        cwd="/",
    )
    return done.stdout.strip() if done.returncode == 0 else ""


# --- DaCHS -------------------------------------------------------------------------------


def _dachs_pid() -> int | None:
    import psutil

    try:
        pid = int(WEB_PID.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or "dachs" not in " ".join(proc.cmdline()):
            return None
    except psutil.Error:
        return None
    return pid


def _run_logged(
    args: list[str],
    log_path: Path,
    *,
    user: str | None = None,
    cwd: str = "/",
    timeout: float = 600,
) -> int:
    if user:
        args = ["runuser", "-u", user, "--", *args]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        try:
            return subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"(timed out after {timeout:g} s)\n")
            return -1


def _configure(port: int) -> None:
    """Point DaCHS's [web] section at 127.0.0.1:PORT, keeping the rest of /etc/gavo.rc."""
    rc = configparser.ConfigParser(interpolation=None)
    rc.optionxform = str  # type: ignore[assignment,method-assign]  # DaCHS option names are case-sensitive; typeshed declares a method
    if GAVO_RC.is_file():
        rc.read(GAVO_RC)
    if not rc.has_section("web"):
        rc.add_section("web")
    rc.set("web", "bindAddress", "127.0.0.1")
    rc.set("web", "serverPort", str(port))
    rc.set("web", "serverURL", f"http://127.0.0.1:{port}")
    with GAVO_RC.open("w") as f:
        rc.write(f)


def _configured_port() -> int | None:
    rc = configparser.ConfigParser(interpolation=None)
    rc.optionxform = str  # type: ignore[assignment,method-assign]  # as in _configure
    try:
        rc.read(GAVO_RC)
        return rc.getint("web", "serverPort")
    except (configparser.Error, ValueError):
        return None


def _link_resource(data_dir: Path) -> None:
    """/var/gavo/inputs/sandbox: the project's RD and the generated data, by symlink."""
    resdir = GAVO_ROOT / "inputs" / RESOURCE
    if resdir.is_symlink():
        resdir.unlink()
    resdir.mkdir(parents=True, exist_ok=True)
    for name, target in (("q.rd", RD_DIR / "q.rd"), ("data", data_dir)):
        link = resdir / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            link.unlink()
        link.symlink_to(target)
    uid, gid = pwd.getpwnam(DACHS_USER).pw_uid, grp.getgrnam("gavo").gr_gid
    os.chown(resdir, uid, gid)


def _imported_rows() -> int:
    """Rows in sandbox.objects, 0 when the table does not exist."""
    exists = _psql(f"SELECT to_regclass('{RESOURCE}.objects') IS NOT NULL")
    if exists != "t":
        return 0
    count = _psql(f"SELECT count(*) FROM {RESOURCE}.objects")
    return int(count) if count.isdigit() else 0


def _import(state_dir: Path, rows: dict) -> None:
    log_path = _log_file(state_dir)
    cwd = str(GAVO_ROOT / "inputs")
    for verb in ("imp", "pub"):
        rc = _run_logged(["dachs", verb, f"{RESOURCE}/q"], log_path, user=DACHS_USER, cwd=cwd)
        if rc != 0:
            raise UserError(
                f"dachs {verb} {RESOURCE}/q failed (exit {rc}); last lines of {log_path}: "
                + _tail_one_line(log_path)
            )
    got = _imported_rows()
    if got != rows["objects"]:
        raise UserError(
            f"after dachs imp, {RESOURCE}.objects has {got} rows instead of {rows['objects']}; "
            f"see {log_path}"
        )


def _tail_one_line(*paths: Path, lines: int = 20) -> str:
    parts = []
    for path in paths:
        if path.is_file():
            parts.append(f"[{path}] " + " | ".join(tail(path, lines).splitlines()))
    return " || ".join(parts) or "(no log)"


def _answers(url: str) -> bool:
    """True when TAP answers its capabilities and a real query on the catalogue."""
    import requests

    try:
        caps = requests.get(f"{url}/capabilities", timeout=5)
        if caps.status_code != 200 or b"capabilities" not in caps.content:
            return False
    except requests.RequestException:
        return False
    # A plain sync query in CSV: the sandbox (a provider of the platform) must not import the
    # TAP client that runs against it.
    try:
        resp = requests.post(
            f"{url}/sync",
            data={
                "REQUEST": "doQuery",
                "LANG": "ADQL",
                "QUERY": PROBE_ADQL,
                "RESPONSEFORMAT": "csv",
            },
            timeout=10,
        )
    except requests.RequestException:
        return False
    lines = [line for line in resp.text.splitlines() if line.strip()]
    return resp.status_code == 200 and len(lines) == 2


# --- the interface the sandbox calls -------------------------------------------------------


def tap_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/tap"


def _owner() -> Path | None:
    """The state dir whose catalogue the machine's DaCHS serves (from the resource symlink)."""
    link = GAVO_ROOT / "inputs" / RESOURCE / "data"
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).parent.parent  # <state dir>/dachs/catalogue


def _serves_another(state_dir: Path) -> Path | None:
    """Another sandbox's state dir when the one DaCHS of this machine is up and serving it."""
    owner = _owner()
    if owner is None or owner.resolve() == Path(state_dir).resolve():
        return None
    other_port = _read_state(owner).get("port")
    if _dachs_pid() is None or not other_port or _configured_port() != other_port:
        return None  # a leftover link: the other sandbox no longer serves TAP
    return owner


def up(state_dir: Path, port: int, timeout: float) -> dict:
    """Start DaCHS (and PostgreSQL if needed) serving the catalogue at 127.0.0.1:PORT.

    Idempotent: a running DaCHS on PORT that answers is left alone, and the catalogue is
    imported only once. Returns {"url", "pids", "started_postgresql", "imported"}.
    """
    reason = unavailable_reason()
    if reason:
        raise UserError(reason)
    state_dir = Path(state_dir)
    state = _read_state(state_dir)
    log_path = _log_file(state_dir)
    url = tap_url(port)
    cluster = _cluster()
    if cluster is None:  # unavailable_reason() has said so already; kept for the type
        raise UserError(unavailable_reason() or "no PostgreSQL cluster found (pg_lsclusters)")
    deadline = time.monotonic() + timeout

    if not _postgres_running(cluster):
        if _run_logged(["pg_ctlcluster", *cluster, "start"], log_path) != 0:
            raise UserError(
                f"PostgreSQL {'/'.join(cluster)} did not start; last lines: "
                + _tail_one_line(
                    log_path, Path(f"/var/log/postgresql/postgresql-{cluster[0]}-{cluster[1]}.log")
                )
            )
        state["started_postgresql"] = True
        _write_state(state_dir, state)

    other = _serves_another(state_dir)
    if other is not None:
        # DaCHS is one per machine (one /etc/gavo.rc, one database): taking it over would cut
        # the other sandbox's TAP service from under its users.
        raise UserError(
            f"the TAP service of this machine serves the sandbox in {other}: stop that sandbox "
            "first, or start this one with --no-tap and BOSUN_TAP_URL="
            f"{tap_url(_configured_port() or port)}"
        )
    pid = _dachs_pid()
    if pid is not None and _configured_port() == port and _answers(url):
        return {
            "url": url,
            "pids": _pids(cluster, pid),
            "started_postgresql": bool(state.get("started_postgresql")),
            "imported": False,
        }
    if pid is not None:
        # Running on another port or not serving our resource: restart it with our settings.
        _run_logged(["dachs", "serve", "stop"], log_path)
        _wait_gone(pid, 15)

    rows = catalogue.write(_dir(state_dir) / "catalogue")
    image_rows = images.write(_dir(state_dir) / "catalogue")
    _make_readable(_dir(state_dir) / "catalogue")
    _link_resource(_dir(state_dir) / "catalogue")
    imported = False
    if _imported_rows() != rows["objects"]:
        log.info(
            "importing the synthetic catalogue into DaCHS (%s objects, %s sources)",
            rows["objects"],
            rows["sources"],
        )
        _import(state_dir, rows)
        imported = True
    # The SIA images table alone, for a DaCHS whose catalogue was imported before it existed.
    images.ensure_imported(image_rows, log_path)
    _configure(port)
    if _run_logged(["dachs", "serve", "start"], log_path, timeout=60) != 0:
        raise UserError(
            f"dachs serve start failed; last lines: {_tail_one_line(log_path, *DACHS_LOGS)}"
        )
    while not _answers(url):
        if time.monotonic() >= deadline:
            raise UserError(
                f"the TAP service did not answer {url} within {timeout:g} s; last lines: "
                + _tail_one_line(log_path, *DACHS_LOGS)
            )
        time.sleep(0.3)
    state.update({"port": port, "url": url})
    _write_state(state_dir, state)
    return {
        "url": url,
        "pids": _pids(cluster, _dachs_pid()),
        "started_postgresql": bool(state.get("started_postgresql")),
        "imported": imported,
    }


def down(state_dir: Path) -> None:
    """Stop DaCHS, and PostgreSQL when `up` started it; wait until nothing listens on the port."""
    state_dir = Path(state_dir)
    state = _read_state(state_dir)
    log_path = _log_file(state_dir)
    other = _serves_another(state_dir)
    if other is not None:
        log.info("the TAP service serves the sandbox in %s: left running", other)
        state.pop("port", None)
        state.pop("url", None)
        if state or _dir(state_dir).exists():
            _write_state(state_dir, state)
        return
    pid = _dachs_pid()
    if pid is not None:
        _run_logged(["dachs", "serve", "stop"], log_path, timeout=60)
        if not _wait_gone(pid, 20):
            import psutil

            with contextlib.suppress(psutil.Error):  # it may have exited meanwhile
                psutil.Process(pid).kill()
            _wait_gone(pid, 5)
    port = state.get("port") or _configured_port()
    if port:
        wait_until(lambda: not port_is_listening(port), 10)
    cluster = _cluster()
    if state.get("started_postgresql") and cluster and _postgres_running(cluster):
        _run_logged(["pg_ctlcluster", *cluster, "stop"], log_path, timeout=60)
    state["started_postgresql"] = False
    if state or _dir(state_dir).exists():
        _write_state(state_dir, state)


def status(state_dir: Path) -> dict:
    """{"running": bool, "url": str | None, "pid": int | None}."""
    state = _read_state(Path(state_dir))
    pid = _dachs_pid()
    port = state.get("port")
    running = pid is not None and isinstance(port, int) and port_is_listening(port)
    return {"running": running, "url": state.get("url") if running else None, "pid": pid}


def _pids(cluster, dachs_pid: int | None) -> dict:
    return {"dachs": dachs_pid, "postgresql": _postgres_pid(cluster)}


def _wait_gone(pid: int, timeout: float) -> bool:
    import psutil

    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def _make_readable(path: Path) -> None:
    # The import runs as dachsroot, which must read the generated files.
    path.chmod(0o755)
    for child in path.iterdir():
        child.chmod(0o644)
