"""A real `service run` process on a free port, for the service's tests and its bench."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TOKENS = {"admin": "tok-admin-0123", "team": "tok-team-4567", "reader": "tok-read-89ab"}
SCOPES = {"admin": ["admin"], "team": ["flocks:team-*"], "reader": ["read"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_auth(path: Path) -> Path:
    """An auth file with an admin, a team (flocks:team-*) and a read-only token."""
    entries = [
        {
            "name": name,
            "token_sha256": hashlib.sha256(TOKENS[name].encode()).hexdigest(),
            "scopes": SCOPES[name],
        }
        for name in TOKENS
    ]
    path.write_text(yaml.safe_dump(entries))
    return path


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


class ServiceProcess:
    """`./run_toolbox.py service run ARGS` in its own process; ready when `/` answers."""

    def __init__(self, tmp: Path, *args: str, env: dict | None = None, prefix: str = "/mobu"):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + prefix
        self.log_path = tmp / f"service-{self.port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "run_toolbox.py"),
                "service",
                "run",
                "--listen",
                f"127.0.0.1:{self.port}",
                *args,
            ],
            cwd=REPO,
            env={**os.environ, "ARTIFACT_DIR": str(tmp / "artifacts"), "CI": "1", **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> ServiceProcess:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.base + "/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"service not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        return code


def wait_for(check, timeout: float = 60.0, what: str = "condition"):
    """Poll `check` every 0.2 s until it returns something true, which is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout} s")


def empty_flock(name: str, count: int, prefix: str) -> dict:
    """An EmptyLoop flock of COUNT monkeys idling 100 ms (mobu's flock shape)."""
    return {
        "name": name,
        "count": count,
        "user_spec": {"username_prefix": prefix},
        "scopes": [],
        "business": {"type": "EmptyLoop", "options": {"idle_time": "100ms"}},
    }


def dask_service(tmp_path: Path, dask: dict, **service: object) -> ServiceProcess:
    """A started service (admin token from `write_auth`) whose flocks matching `dask["flocks"]`
    run on Dask; `service` adds to its config section."""
    config = tmp_path / "config.yaml"
    section = {"flush_interval": "1s", "state_dir": "state", "dask": [dask], **service}
    config.write_text(yaml.safe_dump({"service": section}))
    auth = write_auth(tmp_path / "a.yaml")
    return ServiceProcess(tmp_path, "--config", str(config), "--auth-file", str(auth)).wait_ready()


def metric(svc: ServiceProcess, name: str, **labels: str) -> float:
    """The first sample of `name` at the service's /metrics whose labels include `labels`;
    0 when there is none."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(svc.base + "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return 0.0
