"""Fixtures for the integration tests: the local sandbox platform, brought up once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sandbox():
    """Endpoints of a running sandbox (hub and TAP).

    A sandbox that already runs (a developer's, or one started by `make demo`) is reused and
    left running; one started here is stopped at the end of the session.
    """
    from library import sandbox as sb

    result = sb.up(with_tap=True)
    started_hub = "hub" in result["started"]
    try:
        yield sb.endpoints()
    finally:
        if started_hub:
            sb.down()
