"""The conformance suite over a real store file in a fresh temporary directory per test."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import pytest
from conveyor_json import commit

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


@attrs.frozen
class SlowDisk:
    """What the ``slow_disk`` fixture records: the file's size when each fsync started
    (the bytes it made durable), and an event set while one runs."""

    synced: list[int] = attrs.field(factory=list)
    syncing: threading.Event = attrs.field(factory=threading.Event)


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> SlowDisk:
    """Every fsync of the store takes 5 ms more, so other threads write meanwhile."""
    disk = SlowDisk()
    real = os.fdatasync

    def slow(fd: int) -> None:
        size = os.fstat(fd).st_size
        disk.syncing.set()
        time.sleep(0.005)
        real(fd)
        disk.syncing.clear()
        disk.synced.append(size)

    monkeypatch.setattr(commit.os, "fdatasync", slow)
    return disk


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    # Daemons: a thread stuck for good fails the test instead of keeping pytest from exiting.
    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120  # one bound for all: a stuck batch holds them all
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a thread hung"


@pytest.fixture
def in_threads() -> Callable[[int, Callable[[int], None]], None]:
    """``in_threads(count, work)``: ``work(k)`` in ``count`` threads, all joined (120 s)."""
    return _in_threads
