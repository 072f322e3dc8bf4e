"""mobu's solitary run (``POST /run``): one business, once, as one user; its result and log.

The business is the engine's, driven as a monkey drives it (startup, one execute, shutdown),
with its events recorded like any other and its log lines captured for the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from library.events import short_error
from library.flock.businesses import business_class
from library.flock.businesses.base import MonkeyContext
from library.service.models import SolitaryConfig
from library.service.monkeylog import CURRENT, MonkeyLog
from library.service.runtime import Runtime

log = logging.getLogger(__name__)
SOLITARY_FLOCK = "solitary"


async def run_solitary(config: SolitaryConfig, runtime: Runtime) -> dict[str, Any]:
    business_config = config.business
    options = business_config.parsed_options
    name = config.user.username
    monkey_log = MonkeyLog(runtime.log_lines)
    runtime.logs[(SOLITARY_FLOCK, name)] = monkey_log
    token = CURRENT.set(monkey_log)
    ctx = MonkeyContext(
        SOLITARY_FLOCK,
        business_config.type,
        config.user,
        runtime.recorder,
        runtime.shared,
        list(config.scopes),
    )
    business = business_class(business_config.type)(ctx, options)
    error = None
    try:
        monkey_log.add("Starting up...")
        await business.startup()
        monkey_log.add("Running...")
        await business.execute()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the error is the answer
        error = f"{name}: {type(exc).__name__}: {short_error(exc)}"
        monkey_log.add(f"ERROR {error}")
    finally:
        monkey_log.add("Shutting down...")
        try:
            async with asyncio.timeout(business.shutdown_timeout()):
                await business.shutdown()
        except Exception as exc:  # noqa: BLE001 - a failed cleanup is part of the answer
            monkey_log.add(f"ERROR shutdown: {type(exc).__name__}: {short_error(exc)}")
            error = error or f"{name}: shutdown: {short_error(exc)}"
        CURRENT.reset(token)
        runtime.logs.pop((SOLITARY_FLOCK, name), None)
    result = {"success": error is None, "log": monkey_log.text()}
    if error is not None:
        result["error"] = error
    return result
