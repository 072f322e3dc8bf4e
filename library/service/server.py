"""`service run`: the API and the monkeys on one event loop, until SIGTERM or SIGINT.

Boot: the platform is resolved once, the socket bound (a busy port is one clear error), the
config's flocks started and the saved ones restored, then uvicorn serves. Shutdown (first
signal): the API stops taking requests, every flock stops at once (labs deleted within their
delete_timeout), the events are flushed. A second signal cancels the lab deletions too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from library import platform as plat
from library.errors import UserError
from library.flock.engine import _loop_factory
from library.flock.models import FlockConfig
from library.service.auth import Authenticator
from library.service.dask import flock_factory
from library.service.manager import FlockManager
from library.service.monkeylog import ContextLogHandler
from library.service.runtime import Runtime
from library.service.settings import ServiceSettings
from library.service.store import FlockStore
from library.triggers.service import TriggerService

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)
# The collector stays on in the service, collected less often (FACTS: GC limits 5-10k
# connections) and with each flock's monkeys frozen once started. A scale run turns it off for
# its bounded load (library/flock/gcpolicy.py); a service runs for months and its API and
# retention make garbage of their own (a 10-minute soak of 2,000 HTTP monkeys with it on:
# flat, -0.01 MiB/min).
RUN_GC_THRESHOLD = (100_000, 50, 100)


@dataclass
class ServeResult:
    url: str
    stop_reason: str = ""
    flocks_at_exit: list[str] = field(default_factory=list)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"--listen {host}:{port}: cannot listen there ({exc.strerror}); "
            "choose another port (service.listen)"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def resolve_endpoints(settings: ServiceSettings) -> dict[str, Any]:
    """The platform, resolved once at boot and handed to every flock as data."""
    resolved = plat.resolve(
        hub_url=settings.platform.hub_url,
        tap_url=settings.platform.tap_url,
        token_file=settings.platform.token_file,
    )
    return {"platform": resolved.to_data()}


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's Server without its own signal handling (the service owns the signals)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


def serve(
    settings: ServiceSettings,
    autostart: list[FlockConfig],
    endpoints: dict[str, Any] | None = None,
) -> ServeResult:
    """Run the service in this thread until a signal; returns how it ended."""
    host, port = settings.host_port
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    url = f"http://{host}:{actual}{settings.prefix}"
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(settings, autostart, endpoints, sock, url))


async def _serve(
    settings: ServiceSettings,
    autostart: list[FlockConfig],
    endpoints: dict[str, Any] | None,
    sock: socket.socket,
    url: str,
) -> ServeResult:
    import uvicorn

    from library.service.app import Services, create_app
    from library.service.ci_manager import summarize as summarize_queue
    from library.service.observe import Observer
    from library.service.web.routes import make_router as web_router
    from library.service.web.routes import public_paths as web_public_paths

    result = ServeResult(url)
    auth = Authenticator.from_file(settings.auth_file, settings.anonymous_read)
    if endpoints is None:
        endpoints = resolve_endpoints(settings)
    runtime = Runtime(
        settings.events_path,
        endpoints,
        flush_interval=settings.flush_interval,
        log_lines=settings.monkey_log_lines,
        pause_labs=settings.pause_labs,
    )
    manager = FlockManager(runtime, FlockStore(settings.state_dir))
    if settings.dask:
        manager.make_flock = flock_factory(settings.dask)
    observer = Observer(settings, manager, runtime, auth)
    triggers = TriggerService(settings, manager, auth)
    app = create_app(
        Services(
            settings,
            manager,
            auth,
            runtime,
            routers=[
                observer.router(),
                triggers.router(),
                web_router(settings, manager, auth, observer, triggers),
            ],
            exempt_paths=triggers.exempt_paths,
            public_paths=web_public_paths(settings.prefix),
            ci_manager=lambda: summarize_queue(triggers),
        )
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _server(config)
    handler = ContextLogHandler()
    logging.getLogger().addHandler(handler)
    old_gc = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLD)
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        name = signal.Signals(signum).name
        if signals == 1:
            log.warning("%s: stopping the service (again to stop at once)", name)
            result.stop_reason = name
            server.should_exit = True
        else:
            log.warning("%s again: stopping at once, lab deletions abandoned", name)
            server.force_exit = True
            for flock in list(manager.flocks.values()):
                for task in flock.tasks.values():
                    task.cancel()

    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    try:
        await runtime.start()
        observer.start()
        await triggers.start()
        await manager.boot(autostart)
        log.info(
            "serving on %s (docs %s/docs; %d flocks; auth %s)",
            url,
            url,
            len(manager.flocks),
            settings.auth_file or "none: read-only",
        )
        if not result.stop_reason:
            await server.serve(sockets=[sock])
    finally:
        result.flocks_at_exit = manager.list_flocks()
        await manager.aclose()
        await observer.aclose()
        await triggers.aclose()
        await runtime.aclose()
        for sig in installed:
            loop.remove_signal_handler(sig)
        logging.getLogger().removeHandler(handler)
        gc.set_threshold(*old_gc)
        sock.close()
    log.info("service stopped (%s); events in %s", result.stop_reason, settings.events_path)
    return result
