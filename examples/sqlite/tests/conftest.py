"""Opt into the conformance suite: one plugin line and two fixtures."""

from collections.abc import Callable
from pathlib import Path

import pytest
from conveyor_sqlite_example import SqliteBackend, SqliteConfig

from conveyor import Backend, ManualClock

pytest_plugins = ["conveyor.testing"]


def open_sqlite(path: Path, clock: ManualClock) -> Backend:
    # conveyor.open("sqlite:///...", clock=clock) once installed; this also works uninstalled
    return Backend(SqliteBackend(SqliteConfig(path=str(path), clock=clock)), name="sqlite")


@pytest.fixture
def conveyor_backend(tmp_path: Path, conveyor_clock: ManualClock) -> Backend:
    return open_sqlite(tmp_path / "tasks.db", conveyor_clock)


@pytest.fixture
def conveyor_reopen(tmp_path: Path, conveyor_clock: ManualClock) -> Callable[[], Backend]:
    return lambda: open_sqlite(tmp_path / "tasks.db", conveyor_clock)
