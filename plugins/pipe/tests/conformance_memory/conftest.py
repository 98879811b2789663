"""The conformance suite over a pipe into memory (an exhausted source: pure delegation + poll)."""

from __future__ import annotations

import pytest

import conveyor
from conveyor import Backend, ManualClock
from conveyor.testing import *  # noqa: F403 - the suite (pytest_plugins is refused below the top level)


@pytest.fixture
def conveyor_backend(conveyor_clock: ManualClock) -> Backend:
    inner = conveyor.open("memory", clock=conveyor_clock, idle_wait=0.05)
    return conveyor.open("pipe", source=[], into=inner)
