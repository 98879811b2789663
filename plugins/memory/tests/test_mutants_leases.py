"""Who holds a task and which attempt it is on, checked where memory's bookkeeping shows.

``resume_abandoned`` names the worker that stopped renewing; a worker that let go
of a task (an ack, a resume, a reschedule) must not be that worker. Each test
names the mutant of ``conveyor_memory.backend`` it kills (see docs/mutation.md).
"""

from __future__ import annotations

import conveyor
from conveyor import Backend, ManualClock, Status
from conveyor.outcome import Release, Retry
from conveyor.testing.support import claim, worker


def _memory() -> tuple[Backend, ManualClock]:
    clock = ManualClock(1_700_000_000.0)
    return conveyor.open("memory://?lease_seconds=30", clock=clock), clock


async def _abandoned_by_second_worker(backend: Backend, clock: ManualClock) -> str:
    second = worker(backend)
    task = await claim(backend, second)
    assert task is not None
    clock.advance(31)
    assert await backend.resume_abandoned() == 1
    stored = await backend.fetch_by_id(task.id)
    assert stored is not None and stored.status is Status.PENDING
    assert stored.last_error is not None
    assert second.name in stored.last_error, stored.last_error
    return stored.last_error


async def test_after_an_ack_the_next_holder_is_the_one_named_as_lost() -> None:
    # Kills `if not held is not None` in ack: the acking worker kept holding the task.
    backend, clock = _memory()
    first = worker(backend)
    await backend.push("x", max_attempts=5)
    task = await claim(backend, first)
    assert task is not None
    await backend.hooks.ack(task, Retry(clock.now(), "boom"))
    error = await _abandoned_by_second_worker(backend, clock)
    assert first.name not in error, error


async def test_after_resume_by_id_the_next_holder_is_the_one_named_as_lost() -> None:
    # Kills `stored.lock_by and ""` in resume_by_id: the old holder kept the task.
    backend, clock = _memory()
    first = worker(backend)
    await backend.push("x", max_attempts=5)
    task = await claim(backend, first)
    assert task is not None
    assert await backend.resume_by_id(task.id)
    error = await _abandoned_by_second_worker(backend, clock)
    assert first.name not in error, error


async def test_after_a_reschedule_the_next_holder_is_the_one_named_as_lost() -> None:
    # Kills `stored.lock_by and ""` in reschedule: the old holder kept the task.
    backend, clock = _memory()
    first = worker(backend)
    await backend.push("x", max_attempts=5)
    task = await claim(backend, first)
    assert task is not None
    await backend.reschedule(task)
    error = await _abandoned_by_second_worker(backend, clock)
    assert first.name not in error, error


async def test_release_on_a_later_attempt_gives_back_only_that_attempt() -> None:
    # Kills `stored.attempt % 1` in ack(Release): at attempt 1 both give 0.
    backend, clock = _memory()
    task_id = await backend.push("x", max_attempts=5)
    first = await claim(backend)
    assert first is not None
    await backend.hooks.ack(first, Retry(clock.now(), "once"))
    second = await claim(backend)
    assert second is not None and second.attempt == 2
    await backend.hooks.ack(second, Release())
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None and (stored.status, stored.attempt) == (Status.PENDING, 1)
    third = await claim(backend)
    assert third is not None and third.attempt == 2, "a released attempt was not given back"
