"""The conformance suite over the guide's SQLite example, for the capabilities it declares."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import Backend, ManualClock
from conveyor.testing import *  # noqa: F403 - the suite (pytest_plugins is refused below the top level)

_EXAMPLE = Path(__file__).parents[2] / "examples" / "sqlite_queue.py"
_spec = importlib.util.spec_from_file_location("sqlite_queue_conformance", _EXAMPLE)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
sqlite_queue: Callable[..., Backend] = _module.sqlite_queue


@pytest.fixture
def conveyor_backend(tmp_path: Path, conveyor_clock: ManualClock) -> Backend:
    return sqlite_queue(str(tmp_path / "tasks.db"), clock=conveyor_clock)


@pytest.fixture
def conveyor_reopen(tmp_path: Path, conveyor_clock: ManualClock) -> Callable[[], Backend]:
    return lambda: sqlite_queue(str(tmp_path / "tasks.db"), clock=conveyor_clock)
