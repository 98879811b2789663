"""The guide's SQLite example: short, correct, durable, and safe when a worker process dies."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import (
    Backend,
    Capability,
    Done,
    ManualClock,
    Release,
    Retry,
    StaleLease,
    Status,
    Task,
    WorkerInfo,
)

EXAMPLE = Path(__file__).parents[1] / "examples" / "sqlite_queue.py"
WORKER = WorkerInfo("sqlite-test", "default")


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sqlite_queue_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sqlite_queue: Callable[..., Backend] = load_example().sqlite_queue


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time() + 1)  # pushes (stamped with the real time) are ready


@pytest.fixture
async def backend(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Backend]:
    opened = sqlite_queue(str(tmp_path / "tasks.db"), clock=clock)
    yield opened
    await opened.aclose()


async def claim_next(backend: Backend) -> Task[bytes] | None:
    stream = backend.poll(WORKER)
    try:
        return await anext(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


def test_the_example_is_under_sixty_lines() -> None:
    assert len(EXAMPLE.read_text().splitlines()) < 60


async def test_it_declares_its_parts_as_capabilities(backend: Backend) -> None:
    assert backend.capabilities == {
        Capability.PUSH,
        Capability.ACK,
        Capability.FETCH_BY_ID,
        Capability.RESUME_ABANDONED,
    }


async def test_priority_then_fifo(backend: Backend) -> None:
    for payload, priority in [("a", 0), ("b", 0), ("urgent", 5), ("c", 0)]:
        await backend.push(payload, priority=priority)
    order = []
    while (task := await claim_next(backend)) is not None:
        order.append(backend.codec.decode(task.args))
        await backend.hooks.ack(task, Done())
    assert order == ["urgent", "a", "b", "c"]


async def test_nothing_runs_before_run_at(backend: Backend, clock: ManualClock) -> None:
    await backend.push("later", delay=60)
    assert await claim_next(backend) is None
    clock.advance(61)
    task = await claim_next(backend)
    assert task is not None and backend.codec.decode(task.args) == "later"


async def test_ack_outcomes_and_stale_leases(backend: Backend, clock: ManualClock) -> None:
    task_id = await backend.push("job", max_attempts=2)
    first = await claim_next(backend)
    assert first is not None and first.attempt == 1 and first.status is Status.RUNNING
    await backend.hooks.ack(first, Retry(clock.now(), "boom"))
    assert (stored := await backend.fetch_by_id(task_id)) and stored.status is Status.FAILED
    with pytest.raises(StaleLease):
        await backend.hooks.ack(first, Done())  # that attempt is over
    clock.advance(1)  # the retry's run_at (microseconds) may round above the clock's reading
    second = await claim_next(backend)
    assert second is not None and second.attempt == 2
    await backend.hooks.ack(second, Retry(clock.now(), "boom again"))
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None and stored.status is Status.KILLED
    assert stored.last_error == "boom again"


async def test_release_does_not_count_the_attempt(backend: Backend) -> None:
    task_id = await backend.push("job")
    task = await claim_next(backend)
    assert task is not None
    await backend.hooks.ack(task, Release())
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None and stored.status is Status.PENDING and stored.attempt == 0


async def test_tasks_survive_reopening(tmp_path: Path, clock: ManualClock) -> None:
    path = str(tmp_path / "tasks.db")
    first = sqlite_queue(path, clock=clock)
    task_id = await first.push({"keep": True})
    await first.aclose()
    second = sqlite_queue(path, clock=clock)
    found = await second.fetch_by_id(task_id)
    assert found is not None and found.args == {"keep": True}
    await second.aclose()


CHILD = """
import asyncio, sys
from conveyor import WorkerInfo
sys.path.insert(0, {folder!r})
from sqlite_queue import sqlite_queue

async def main():
    backend = sqlite_queue({path!r})
    task = await anext(backend.poll(WorkerInfo("doomed", "default")))
    print("claimed", task.id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_workers_task_is_resumed(tmp_path: Path) -> None:
    path = str(tmp_path / "tasks.db")
    backend = sqlite_queue(path)
    task_id = await backend.push("survive me")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(folder=str(EXAMPLE.parent), path=path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.split() == ["claimed", str(task_id)]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    held = await backend.fetch_by_id(task_id)
    assert held is not None and held.status is Status.RUNNING and held.lock_by == "doomed"
    assert await backend.resume_abandoned() == 0  # its lease has not run out yet
    await backend.aclose()

    later = ManualClock(time.time() + 3600)
    backend = sqlite_queue(path, clock=later)
    assert await backend.resume_abandoned() == 1
    again = await claim_next(backend)
    assert again is not None and again.id == task_id and again.attempt == 2
    assert again.lock_by == WORKER.name
    await backend.aclose()


def test_the_guide_shows_the_example_verbatim() -> None:
    guide = (Path(__file__).parents[3] / "docs" / "custom-backends.md").read_text()
    assert "```python\n" + EXAMPLE.read_text() + "```\n" in guide
