"""The conformance suite over a real store file in a fresh temporary directory per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import conveyor
from conveyor import Backend, ManualClock
from conveyor.testing import *  # noqa: F403 - the suite (pytest_plugins is refused below the top level)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.json"


@pytest.fixture
def conveyor_backend(store_path: Path, conveyor_clock: ManualClock) -> Backend:
    return conveyor.open(f"json://{store_path}", clock=conveyor_clock)


@pytest.fixture
def conveyor_reopen(store_path: Path, conveyor_clock: ManualClock) -> Callable[[], Backend]:
    return lambda: conveyor.open(f"json://{store_path}", clock=conveyor_clock)
