# JupyterHub configuration of the local sandbox platform.
#
# Loaded by `jupyterhub -f` (started by `./run_toolbox.py sandbox up`), which sets the
# BOSUN_SANDBOX_* environment variables below. Each setting is here because the hub, the
# proxy or a burst of labs misbehaved without it (see docs/sandbox.md).
import os
import sys
from pathlib import Path

from jupyterhub import orm
from jupyterhub.auth import Authenticator
from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web

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
        options = self.user_options or {}
        if isinstance(options.get("image"), str):
            env["JUPYTER_IMAGE_SPEC"] = options["image"]
        if isinstance(options.get("size"), str):
            env["BOSUN_LAB_SIZE"] = options["size"]
        return env


c.JupyterHub.spawner_class = TrackedSpawner
c.SimpleLocalProcessSpawner.home_dir_template = str(state / "home" / "{username}")
if lab_python is not None:
    # The venv's scripts name the project's interpreter, which the lab user may not reach.
    c.Spawner.cmd = [lab_python, "-m", "jupyterhub.singleuser"]
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


# A spawn form shaped like Nublado's: an image by class, from a list or by tag, and a size.
# The choice reaches the lab as user_options (REST: GET /hub/api/users/NAME, servers[""])
# and as the environment variables JUPYTER_IMAGE_SPEC (as in Nublado labs) and
# BOSUN_LAB_SIZE. Labs all run the same venv: the image is a label here.
LAB_IMAGE_REPO = "sandbox/lab"
LAB_IMAGE_TAGS = ["recommended", "w_2025_01", "r29_0_0"]
LAB_IMAGES = [f"{LAB_IMAGE_REPO}:{tag}" for tag in LAB_IMAGE_TAGS]
LAB_SIZES = {"small": "1 CPU, 4 GiB", "medium": "2 CPU, 8 GiB", "large": "4 CPU, 16 GiB"}


def _options_form(spawner) -> str:
    images = "".join(f'<option value="{ref}">{ref}</option>' for ref in LAB_IMAGES)
    sizes = "".join(
        f'<option value="{name}"{" selected" if name == "small" else ""}>{name} ({what})</option>'
        for name, what in LAB_SIZES.items()
    )
    return f"""
<fieldset>
  <legend>Image</legend>
  <label><input type="radio" name="image_class" value="recommended" checked>
    Recommended ({LAB_IMAGES[0]})</label><br>
  <label><input type="radio" name="image_class" value="list"> From the list</label>
  <select name="image_list">{images}</select><br>
  <label><input type="radio" name="image_class" value="tag"> By tag</label>
  <input type="text" name="image_tag" value="" placeholder="{LAB_IMAGE_TAGS[1]}">
</fieldset>
<fieldset>
  <legend>Size</legend>
  <select name="size">{sizes}</select>
</fieldset>
"""


def _form_error(message: str) -> web.HTTPError:
    # The hub shows jupyterhub_message in the form's error line and answers 400.
    exc = web.HTTPError(400, message)
    exc.jupyterhub_message = message
    return exc


def _options_from_form(formdata: dict) -> dict:
    """The form's fields as user_options; an unknown choice is refused with 400."""

    def field(name: str) -> str:
        values = formdata.get(name) or [""]
        return values[0].strip()

    image_class = field("image_class")
    if not image_class:
        # Clients that post one image field only (as mobu does) say which by its name.
        image_class = "tag" if field("image_tag") else "list" if field("image_list") else ""
        image_class = image_class or "recommended"
    if image_class == "recommended":
        image = LAB_IMAGES[0]
    elif image_class == "list":
        image = field("image_list")
        if image not in LAB_IMAGES:
            raise _form_error(f"unknown image_list {image!r}: choose one of {LAB_IMAGES}")
    elif image_class == "tag":
        tag = field("image_tag")
        if tag not in LAB_IMAGE_TAGS:
            raise _form_error(f"unknown image_tag {tag!r}: choose one of {LAB_IMAGE_TAGS}")
        image = f"{LAB_IMAGE_REPO}:{tag}"
    else:
        raise _form_error(f"unknown image_class {image_class!r}: recommended, list or tag")
    size = field("size") or "small"
    if size not in LAB_SIZES:
        raise _form_error(f"unknown size {size!r}: choose one of {list(LAB_SIZES)}")
    return {"image": image, "image_class": image_class, "size": size}


c.Spawner.options_form = _options_form
c.Spawner.options_from_form = _options_from_form
# get_env above applies image and size; this hook only marks them as handled.
c.Spawner.apply_user_options = lambda spawner, user_options: None
