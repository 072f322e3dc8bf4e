# JupyterHub configuration of the local sandbox platform.
#
# Loaded by `jupyterhub -f` (started by `./run_toolbox.py sandbox up`), which sets the
# BOSUN_SANDBOX_* environment variables below. Each setting is here because the hub, the
# proxy or a burst of labs misbehaved without it (see docs/sandbox.md).
import os
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner

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

# API-only login: bot users are created through the REST API by the orchestrator service.
c.JupyterHub.authenticator_class = "null"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{"name": "orchestrator", "api_token": orchestrator_token}]
c.JupyterHub.load_roles = [
    {
        "name": "orchestrator",
        "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "read:metrics"],
        "services": ["orchestrator"],
    }
]

# Without this, POST .../server blocks for up to 10 s and the progress stream only carries
# the final event.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}


class TrackedSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner that records each lab's PID for `sandbox down`."""

    def _pid_file(self) -> Path:
        suffix = f"-{self.name}" if self.name else ""
        return lab_pids / f"{self.user.name}{suffix}.pid"

    async def start(self):
        url = await super().start()
        lab_pids.mkdir(parents=True, exist_ok=True)
        self._pid_file().write_text(f"{self.pid}\n")
        return url

    async def stop(self, now=False):
        await super().stop(now=now)
        self._pid_file().unlink(missing_ok=True)


c.JupyterHub.spawner_class = TrackedSpawner
c.SimpleLocalProcessSpawner.home_dir_template = str(state / "home" / "{username}")
c.Spawner.cmd = [str(venv_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
# Bursts of 30 labs failed with the 30 s defaults.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120

# ipc kernel transport: 50 labs starting kernels at once raced for TCP ports.
lab_args = ["--KernelManager.transport=ipc"]
if os.geteuid() == 0:
    # The single-user server refuses to run as root without it (a bare 500 after ~11 s).
    lab_args.append("--allow-root")
c.Spawner.args = lab_args


def _runtime_dir(spawner) -> str:
    # Keyed by the numeric user id: ipc socket paths must stay under 108 characters.
    path = state / "rt" / str(spawner.user.id)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


c.Spawner.environment = {
    "JUPYTER_RUNTIME_DIR": _runtime_dir,
    # Labs and their kernels use the project's venv (jupyterhub-singleuser, ipykernel, pyvo).
    "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
    "VIRTUAL_ENV": str(venv_bin.parent),
}
