# JupyterHub configuration of the local sandbox platform.
#
# Loaded by `jupyterhub -f` (started by `./run_toolbox.py sandbox up`), which sets the
# BOSUN_SANDBOX_* environment variables below. Each setting is here because the hub, the
# proxy or a burst of labs misbehaved without it (see docs/sandbox.md).
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jupyterhub import orm
from jupyterhub.auth import Authenticator
from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web

# The spawn form's rules; importable because the venv has the project installed (make setup).
from library.sandbox import spawn_form

if TYPE_CHECKING:  # JupyterHub defines get_config in the namespace it runs this file in
    from traitlets.config import get_config

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

state = Path(os.environ["BOSUN_SANDBOX_DIR"])
venv_bin = Path(os.environ.get("BOSUN_SANDBOX_VENV_BIN", Path(sys.executable).parent))
proxy_cmd = os.environ["BOSUN_SANDBOX_PROXY_CMD"]
hub_port = int(os.environ["BOSUN_SANDBOX_HUB_PORT"])
proxy_api_port = int(os.environ["BOSUN_SANDBOX_PROXY_API_PORT"])
hub_internal_port = int(os.environ["BOSUN_SANDBOX_HUB_INTERNAL_PORT"])
# The token is read from its 0600 file rather than passed in the environment, which the
# spawned labs would otherwise be one misconfiguration away from inheriting.
orchestrator_token = (state / "orchestrator.token").read_text().strip()

hub_dir = state / "hub"
lab_pids = state / "pids" / "labs"

# Everything on the loopback interface.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = hub_port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = hub_internal_port
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [proxy_cmd]
c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "proxy.pid")
c.Spawner.ip = "127.0.0.1"

# State stays in the sandbox dir, never in the working directory or the user's home.
c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(hub_dir / "jupyterhub.pid")


class BearerLoginAuthenticator(Authenticator):
    """Logs a user into the hub's web pages with their own API token, as Nublado does.

    On Nublado, Gafaelfawr validates ``Authorization: bearer TOKEN`` in front of the hub and
    the hub's login handler trusts the identity it passes on. Here the hub checks the token
    itself: ``GET /hub/login`` (where every page sends a visitor without a session) with a
    user's valid token sets that user's session cookies. Service tokens (the orchestrator)
    log no one in. Without the header there is no login page, only 403, so users are still
    created through the REST API; the hub listens on 127.0.0.1 only.
    """

    auto_login = True
    login_service = "bearer token"

    def authenticate(self, handler, data=None):
        scheme, _, token = handler.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            return None
        orm_token = orm.APIToken.find(handler.db, token.strip(), kind="user")
        if orm_token is None or orm_token.user is None:
            return None
        return orm_token.user.name


# Bot users are created through the REST API by the orchestrator service; their own tokens
# log them into the web pages (the spawn form).
c.JupyterHub.authenticator_class = BearerLoginAuthenticator
c.Authenticator.allow_all = True
c.JupyterHub.services = [{"name": "orchestrator", "api_token": orchestrator_token}]
# The RSP's service scopes (Gafaelfawr's) as hub custom scopes, so a bot user's token can carry
# a flock's `scopes` (library.platform_tokens.hub_scopes maps read:tap to custom:read:tap) and
# the TAP front (library.sandbox.tapauth) can refuse a token without read:tap.
RSP_SCOPES = ["read:tap", "read:image", "exec:portal", "exec:internal-tools"]
c.JupyterHub.custom_scopes = {
    f"custom:{name}": {"description": f"The RSP scope {name} (sandbox)"} for name in RSP_SCOPES
}
c.JupyterHub.load_roles = [
    {
        "name": "orchestrator",
        "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:metrics"],
        "services": ["orchestrator"],
    },
    # Every user may hold the RSP scopes (a token minted without scopes inherits them all).
    {"name": "user", "scopes": ["self", *(f"custom:{name}" for name in RSP_SCOPES)]},
]

# Without this, POST .../server blocks for up to 10 s and the progress stream only carries
# the final event.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}


# Set by `sandbox up` when it runs as root (library/sandbox/labuser.py): labs drop to this
# unprivileged user, which cannot read the state dir's secrets, and run this Python.
lab_user = os.environ.get("BOSUN_SANDBOX_LAB_USER") or None
lab_python = os.environ.get("BOSUN_SANDBOX_LAB_PYTHON") or None


def _own(path: Path, mode: int = 0o700) -> None:
    """PATH (created if needed) belongs to the lab user, with everything in it."""
    import pwd

    if lab_user is None:
        raise RuntimeError("_own is for the lab user, which BOSUN_SANDBOX_LAB_USER names")
    entry = pwd.getpwnam(lab_user)
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid != entry.pw_uid:
        # A dir left by a lab that ran as root: hand all of it over.
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, mode)


class TrackedSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner that records each lab's PID for `sandbox down` and, when
    the sandbox runs as root, runs the lab as the unprivileged lab user."""

    def make_preexec_fn(self, name):
        if lab_user is None:
            return super().make_preexec_fn(name)
        from jupyterhub.spawner import set_user_setuid

        drop = set_user_setuid(lab_user, chdir=False)
        home = self.home_dir

        def preexec():
            drop()
            os.chdir(home)

        return preexec

    def _pid_file(self) -> Path:
        suffix = f"-{self.name}" if self.name else ""
        return lab_pids / f"{self.user.name}{suffix}.pid"

    async def start(self):
        if lab_user is not None:
            _own(Path(self.home_dir))
        url = await super().start()
        lab_pids.mkdir(parents=True, exist_ok=True)
        self._pid_file().write_text(f"{self.pid}\n")
        return url

    async def stop(self, now=False):
        await super().stop(now=now)
        self._pid_file().unlink(missing_ok=True)

    def get_env(self):
        env = super().get_env()
        # The lab shows which image and size it was asked for (spawn form or REST options).
        env.update(spawn_form.lab_env(self.user_options or {}))
        return env


c.JupyterHub.spawner_class = TrackedSpawner
c.SimpleLocalProcessSpawner.home_dir_template = str(state / "home" / "{username}")
if lab_python is not None:
    # The venv's scripts name the project's interpreter, which the lab user may not reach:
    # the script runs under the lab's Python (its name stays in the command line, which
    # `sandbox status`/`down` look for).
    c.Spawner.cmd = [lab_python, str(venv_bin / "jupyterhub-singleuser")]
else:
    c.Spawner.cmd = [str(venv_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
# Bursts of 30 labs failed with the 30 s defaults.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# ipc kernel transport: 50 labs starting kernels at once raced for TCP ports.
lab_args = ["--KernelManager.transport=ipc"]
if os.geteuid() == 0 and lab_user is None:
    # The single-user server refuses to run as root without it (a bare 500 after ~11 s).
    lab_args.append("--allow-root")
c.Spawner.args = lab_args


def _runtime_dir(spawner) -> str:
    # Keyed by the numeric user id: ipc socket paths must stay under 108 characters.
    path = state / "rt" / str(spawner.user.id)
    if lab_user is not None:
        _own(path)
    else:
        path.mkdir(parents=True, exist_ok=True)
    return str(path)


lab_bin = Path(lab_python).parent if lab_python is not None else venv_bin


c.Spawner.environment = {
    "JUPYTER_RUNTIME_DIR": _runtime_dir,
    # Labs and their kernels use the project's venv (jupyterhub-singleuser, ipykernel, pyvo).
    "PATH": f"{lab_bin}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
    "VIRTUAL_ENV": str(lab_bin.parent),
}


# A spawn form shaped like Nublado's (library/sandbox/spawn_form.py): an image by class, by
# reference or by tag, a size, debug. The choice reaches the lab as user_options (REST: GET
# /hub/api/users/NAME, servers[""]) and as environment variables (TrackedSpawner.get_env).


def _options_from_form(formdata: dict) -> dict:
    try:
        return spawn_form.options_from_form(formdata)
    except spawn_form.FormRefused as exc:
        # The hub shows jupyterhub_message in the form's error line and answers 400.
        error = web.HTTPError(400, str(exc))
        error.jupyterhub_message = str(exc)  # type: ignore[attr-defined]  # read by JupyterHub, unknown to tornado
        raise error from None


c.Spawner.options_form = lambda spawner: spawn_form.options_form()
c.Spawner.options_from_form = _options_from_form
# get_env applies image and size; this hook only marks them as handled.
c.Spawner.apply_user_options = lambda spawner, user_options: None
