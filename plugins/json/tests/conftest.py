"""The conformance suite over a real store file in a fresh temporary directory per test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import conveyor
from conveyor import Backend, Filter, ManualClock, Task
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


Row = tuple[object, ...]


def _seen(task: Task[bytes]) -> Row:
    return (
        task.id, task.args, task.queue, task.status, task.attempt, task.max_attempts,
        task.run_at, task.priority, task.result, task.last_error, task.lock_by,
        task.lease_token, task.lease_until, dict(task.meta), task.name,
    )  # fmt: skip


async def _listed(backend: Backend) -> list[Row]:
    return sorted(_seen(t) for t in await backend.hooks.list_all_tasks(Filter(page_size=100)))


@pytest.fixture
def seen() -> Callable[[Task[bytes]], Row]:
    """Every field of a task as one comparable row."""
    return _seen


@pytest.fixture
def listed() -> Callable[[Backend], Awaitable[list[Row]]]:
    """Every task a backend lists (up to 100), as sorted rows: what a reopen must keep."""
    return _listed
