"""The sandbox's small services, in one tracked process: service discovery and Git LFS.

- Service discovery: ``GET /discovery`` returns the document `library.sandbox.discovery`
  builds (Repertoire's format), written by `up` into the state dir and re-read per request, so
  it always names the services that run.
- Git LFS: giftless (`library.sandbox.lfs`), objects under the state dir.

Both listen on 127.0.0.1, on the two ports after the hub's and TAP's (port base + 8 and + 9,
leaving room below for the other halves). `up`/`down`/`status` follow the rest of the sandbox:
a PID file with the start time, so `down` stops exactly this process.

Run as ``python -m library.sandbox.services --state-dir DIR --discovery-port N --lfs-port M
--hub-api URL`` (what `up` does).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from library.sandbox import discovery, images, lfs
from library.sandbox import state as st

log = logging.getLogger(__name__)

DISCOVERY_OFFSET = 8
LFS_OFFSET = 9
PROCESS_MARK = "library.sandbox.services"


def ports(port_base: int) -> dict[str, int]:
    return {"discovery": port_base + DISCOVERY_OFFSET, "lfs": port_base + LFS_OFFSET}


def _paths(state_dir: Path) -> dict[str, Path]:
    root = Path(state_dir)
    return {
        "pid": root / "pids" / "services.pid",
        "log": root / "logs" / "services.log",
        "document": root / "discovery.json",
        "lfs_storage": root / "lfs",
    }


def urls(port_base: int) -> dict[str, str]:
    p = ports(port_base)
    return {
        "discovery_url": f"http://127.0.0.1:{p['discovery']}",
        "lfs_url": f"http://127.0.0.1:{p['lfs']}",
    }


def write_document(state_dir: Path, document: dict) -> None:
    """Publish DOCUMENT (atomically: a request never reads half a file)."""
    path = _paths(state_dir)["document"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def running(state_dir: Path):
    return st.live_process(_paths(state_dir)["pid"], PROCESS_MARK)


def up(state_dir: Path, port_base: int, hub_api_url: str, timeout: float = 30.0) -> dict:
    """Start the process unless it runs; wait until both services answer. URLs and PID."""
    paths = _paths(state_dir)
    found = urls(port_base)
    proc = running(state_dir)
    if proc is not None:
        return {**found, "pid": proc.pid}
    if not paths["document"].exists():
        write_document(state_dir, {})
    p = ports(port_base)
    pid = st.start_module(
        PROCESS_MARK,
        ["--state-dir", str(state_dir), "--discovery-port", str(p["discovery"])]
        + ["--lfs-port", str(p["lfs"]), "--hub-api", hub_api_url],
        pid_file=paths["pid"],
        log_file=paths["log"],
        ports={f"sandbox {name}": port for name, port in p.items()},
        what="sandbox services (discovery, Git LFS)",
        timeout=timeout,
    )
    return {**found, "pid": pid}


def stop(state_dir: Path) -> list[int]:
    """Stop the process if it runs; the PIDs stopped."""
    proc = running(state_dir)
    stopped = []
    if proc is not None:
        st.stop_process_group(proc)
        stopped.append(proc.pid)
    _paths(state_dir)["pid"].unlink(missing_ok=True)
    return stopped


def status(state_dir: Path, port_base: int) -> dict:
    proc = running(state_dir)
    result = {"running": proc is not None, "pid": proc.pid if proc else None}
    if proc is not None:
        result.update(urls(port_base))
    else:
        result.update({"discovery_url": None, "lfs_url": None})
    return result


# --- what the sandbox's up/down/status/platform call -------------------------------------


def sandbox_up(state_dir: Path, port_base: int, hub_url: str, tap_url: str | None) -> dict:
    """Start the services (hub running) and publish the discovery document for what runs."""
    hub_api_url = hub_url.rstrip("/") + "/hub/api"
    result = up(state_dir, port_base, hub_api_url)
    document = discovery.document(
        hub_url=hub_url,
        tap_url=tap_url,
        sia_url=images.sia_url(tap_url) if tap_url else None,
        lfs_url=result["lfs_url"],
    )
    write_document(state_dir, document)
    return {**result, **lfs.repo_urls(result["lfs_url"])}


def platform_urls(state_dir: Path, port_base: int, tap_url: str | None) -> dict[str, str | None]:
    """The sandbox's SIA and discovery URLs, for its Platform (None for what does not run)."""
    found = status(state_dir, port_base)
    return {
        "sia_url": images.sia_url(tap_url) if tap_url else None,
        "discovery_url": found["discovery_url"],
    }


# --- the process ---------------------------------------------------------------------------


def discovery_server(port: int, document: Path):
    """A server answering GET /discovery with DOCUMENT (re-read per request); port 0: any."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path.split("?")[0].rstrip("/") != "/discovery":
                self.send_error(404, "only /discovery is served here")
                return
            body = document.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - http.server's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(prog=PROCESS_MARK)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--discovery-port", required=True, type=int)
    parser.add_argument("--lfs-port", required=True, type=int)
    parser.add_argument("--hub-api", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # werkzeug logs each request line, and LFS action URLs carry a signed token (?jwt=...).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    paths = _paths(args.state_dir)
    discovery = discovery_server(args.discovery_port, paths["document"])
    lfs_server = make_server(
        "127.0.0.1",
        args.lfs_port,
        lfs.make_app(paths["lfs_storage"], args.hub_api),
        threaded=True,
    )
    threads = [
        threading.Thread(target=discovery.serve_forever, name="discovery", daemon=True),
        threading.Thread(target=lfs_server.serve_forever, name="lfs", daemon=True),
    ]
    for thread in threads:
        thread.start()
    stop_event = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())
    log.info("discovery on %d, Git LFS on %d", args.discovery_port, args.lfs_port)
    while not stop_event.wait(1.0):
        pass
    discovery.shutdown()
    lfs_server.shutdown()
    time.sleep(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
