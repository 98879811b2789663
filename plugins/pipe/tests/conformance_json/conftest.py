"""The conformance suite over a pipe into the JSON store (skipped until conveyor-json exists)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import conveyor
from conveyor import Backend, ManualClock
from conveyor.testing import *  # noqa: F403 - the suite (pytest_plugins is refused below the top level)


def _pipe_over_json(path: Path, clock: ManualClock) -> Backend:
    if "json" not in conveyor.registry.names():
        pytest.skip("conveyor-json is not installed")
    inner = conveyor.open("json", path=str(path), clock=clock, idle_wait=0.05)
    return conveyor.open("pipe", source=[], into=inner)


@pytest.fixture
def conveyor_backend(tmp_path: Path, conveyor_clock: ManualClock) -> Backend:
    return _pipe_over_json(tmp_path / "tasks.json", conveyor_clock)


@pytest.fixture
def conveyor_reopen(tmp_path: Path, conveyor_clock: ManualClock) -> Callable[[], Backend]:
    return lambda: _pipe_over_json(tmp_path / "tasks.json", conveyor_clock)
