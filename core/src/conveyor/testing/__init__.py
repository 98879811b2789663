"""The conformance suite: a pytest plugin every backend author opts into.

In the conftest next to your tests::

    pytest_plugins = ["conveyor.testing"]

    @pytest.fixture
    def conveyor_backend(conveyor_clock):
        return conveyor.open("mybackend", clock=conveyor_clock)

That is all: the plugin collects the suite's test classes (one per capability,
one for the required Backend trait, a stateful model) next to that conftest.

Fixtures: ``conveyor_backend`` (yours, required): a fresh, opened ``Backend``,
sync or async, returned or yielded; the suite closes it after each test.
``conveyor_clock`` (the suite's): a ``ManualClock`` to pass as ``clock=``; the
suite moves it to expire leases and reach ``run_at`` without sleeping. A backend
that cannot take a clock overrides it to return ``None``: tests that need to move
time are then skipped with that reason. ``conveyor_reopen`` (yours, optional): a
zero-argument callable opening another ``Backend`` on the same store; without
it the reopen checks are skipped.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite(
    "conveyor.testing.suite",
    "conveyor.testing.suite_backend",
    "conveyor.testing.suite_sink",
    "conveyor.testing.suite_ack",
    "conveyor.testing.suite_manage",
    "conveyor.testing.suite_expose",
    "conveyor.testing.suite_wait",
    "conveyor.testing.suite_shared",
    "conveyor.testing.suite_order",
    "conveyor.testing.suite_worker",
    "conveyor.testing.suite_migrate",
    "conveyor.testing.model",
    "conveyor.testing.model_base",
)

import pytest_asyncio  # noqa: E402 - after the assert-rewrite registration

from conveyor.backend import Backend  # noqa: E402
from conveyor.clock import ManualClock  # noqa: E402
from conveyor.testing.collect import ConformanceModule, defines_backend_fixture  # noqa: E402
from conveyor.testing.support import Suite  # noqa: E402

__all__ = [
    "CLOCK_LEAD",
    "Suite",
    "conveyor_clock",
    "conveyor_reopen",
    "conveyor_suite",
    "pytest_collect_file",
    "pytest_configure",
]

CLOCK_LEAD = 60
"""How many seconds ahead of the real time ``conveyor_clock`` starts.

The facade stamps pushes with the backend's ``config.clock`` when it has one.
A backend that reads the manual clock some other way (a custom backend whose
parts close over it) gets pushes stamped with the real time, which must still
look ready to it: hence the lead. The whole second is belt and braces beside
``conveyor.clock.at``, which floors every derived time to the microsecond.
"""


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers the suite uses (authors may run ``--strict-markers``)."""
    config.addinivalue_line("markers", "slow: long-running (soak); deselect with -m 'not slow'")
    config.addinivalue_line(
        "markers", "conveyor_capability(name): the capability a conformance test class checks"
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect the suite beside every conftest that defines ``conveyor_backend``."""
    if file_path.name != "conftest.py":
        return None
    if not defines_backend_fixture(parent.config, file_path):
        return None
    module: ConformanceModule = ConformanceModule.from_parent(parent, path=file_path)
    return module


@pytest.fixture
def conveyor_clock() -> ManualClock | None:
    """A manual clock for the backend under test (``None`` if it cannot take one)."""
    return ManualClock(math.floor(time.time()) + CLOCK_LEAD)


@pytest.fixture
def conveyor_reopen() -> Callable[[], Backend] | None:
    """Override to return a callable opening another backend on the same store."""
    return None


@pytest_asyncio.fixture
async def conveyor_suite(
    conveyor_backend: Any, conveyor_clock: ManualClock | None
) -> AsyncIterator[Suite]:
    """The backend under test with its clock; closed after the test."""
    if not isinstance(conveyor_backend, Backend):
        raise TypeError(
            "the conveyor_backend fixture must return an opened conveyor.Backend"
            f" (from conveyor.open(...)), not {type(conveyor_backend).__name__}"
        )
    try:
        yield Suite(conveyor_backend, conveyor_clock)
    finally:
        await conveyor_backend.aclose()
