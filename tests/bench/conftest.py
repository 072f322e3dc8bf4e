"""Fixtures for the benchmarks: the same session sandbox as the integration tests.

`make bench` collects `bench_*.py` from tests/bench only, so the integration conftest is not
in scope; its fixture is imported here rather than copied, so both bring the sandbox up (or
reuse a running one) the same way.
"""

from tests.integration.conftest import sandbox  # noqa: F401 - a fixture, found by name
