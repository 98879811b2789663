"""Fixtures shared by the core's worker and middleware tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import conveyor
from conveyor import Backend, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """A stopped clock the memory backend, the facade and the worker all read."""
    return ManualClock()


@pytest.fixture
async def backend(clock: ManualClock) -> AsyncIterator[Backend]:
    async with conveyor.open("memory", clock=clock) as opened:
        yield opened
