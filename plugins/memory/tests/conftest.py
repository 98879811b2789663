"""The memory backend runs the whole conformance suite, collected beside this file.

This conftest is not at the repository's top level, where pytest refuses
``pytest_plugins``; importing the plugin's names is the equivalent.
"""

from __future__ import annotations

import pytest

import conveyor
from conveyor import Backend, ManualClock
from conveyor.testing import *  # noqa: F403 - the conformance suite's fixtures and hooks


@pytest.fixture
def conveyor_backend(conveyor_clock: ManualClock) -> Backend:
    return conveyor.open("memory", clock=conveyor_clock)
