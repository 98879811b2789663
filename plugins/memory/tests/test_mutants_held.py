"""A worker's held set shrinks when it lets a task go: memory's one unbounded-growth risk.

Memory records, per worker, the ids it holds (``store.held``) so a heartbeat
touches only those. An entry left behind after an ack, a reschedule, a resume or
an abandon changes nothing a caller can see (the rules check ``lock_by`` and the
token), so these tests read the store directly: a leak has no other symptom, and
a long-running worker would carry every task it ever ran. Found by mutation
testing (``task.lock_by is not None`` in ``_release`` and the discard in
``resume_abandoned`` survived).
"""

from __future__ import annotations

import conveyor
from conveyor import Backend, ManualClock
from conveyor.outcome import Done, Kill, Release, Retry
from conveyor.testing.support import claim, worker


def _memory() -> tuple[Backend, ManualClock]:
    clock = ManualClock(1_700_000_000.0)
    return conveyor.open("memory://?lease_seconds=30", clock=clock), clock


def _held(backend: Backend, name: str) -> set[object]:
    held: set[object] = backend.plugin.store.held.get(name, set())  # type: ignore[attr-defined]
    return held


async def test_every_ack_outcome_lets_the_task_go() -> None:
    backend, clock = _memory()
    who = worker(backend)
    for outcome in (Done(None), Retry(clock.now(), "x"), Kill("x"), Release()):
        await backend.push("x")
        task = await claim(backend, who)
        assert task is not None and _held(backend, who.name) == {task.id}
        await backend.hooks.ack(task, outcome)
        assert _held(backend, who.name) == set(), f"still held after {outcome!r}"


async def test_reschedule_resume_and_abandon_let_the_task_go() -> None:
    backend, clock = _memory()
    who = worker(backend)
    await backend.push("x", max_attempts=9)
    task = await claim(backend, who)
    assert task is not None
    await backend.reschedule(task)
    assert _held(backend, who.name) == set(), "still held after a reschedule"
    task = await claim(backend, who)
    assert task is not None
    assert await backend.resume_by_id(task.id)
    assert _held(backend, who.name) == set(), "still held after resume_by_id"
    task = await claim(backend, who)
    assert task is not None
    clock.advance(31)
    assert await backend.resume_abandoned() == 1
    assert _held(backend, who.name) == set(), "still held after resume_abandoned"
