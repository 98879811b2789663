"""``Worker.drain(within=...)``: run until nothing is left that falls due before a horizon,
retries and delayed tasks included (issue 14, item 9)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest

import conveyor
from conveyor import (
    Backend,
    ManualClock,
    RetryAfter,
    Status,
    Task,
    TaskContext,
    TaskId,
    Worker,
    WorkerInfo,
    hookimpl,
)
from conveyor.middleware import RetryPolicy
from conveyor.outcome import Outcome


async def test_drain_runs_retries_to_the_end_moving_a_manual_clock(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("flaky", max_attempts=5)
    attempts: list[int] = []

    async def third_time_lucky(_: str, ctx: TaskContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return "done"

    start = clock.time()
    worker = Worker(backend, third_time_lucky, middleware=[RetryPolicy(base=60, max_delay=600)])
    await asyncio.wait_for(worker.drain(within=timedelta(hours=1)), timeout=30)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, "done")
    assert attempts == [1, 2, 3]
    # The clock was moved to each retry's due time, never past the horizon.
    assert start < clock.time() <= start + 3600


async def test_drain_stops_at_its_horizon(backend: Backend, clock: ManualClock) -> None:
    soon = await backend.push("soon", delay=120)
    late = await backend.push("late", delay=7200)
    killed = await backend.push("never", max_attempts=2)
    ran: list[str] = []

    async def handle(name: str) -> None:
        ran.append(name)
        if name == "never":
            raise RetryAfter(7200)  # the retry falls past the horizon

    start = clock.time()
    await asyncio.wait_for(Worker(backend, handle).drain(within=600), timeout=30)
    assert sorted(ran) == ["never", "soon"]
    statuses = {t: (await backend.fetch_by_id(t)).status for t in (soon, late, killed)}  # type: ignore[union-attr]
    assert statuses == {soon: Status.DONE, late: Status.PENDING, killed: Status.FAILED}
    assert clock.time() <= start + 600


async def test_burst_alone_leaves_the_retry_for_later(backend: Backend) -> None:
    """The contrast drain exists for: ``run(burst=True)`` returns while a retry is due."""
    task_id = await backend.push("x")

    async def once_more(_: str, ctx: TaskContext) -> None:
        if ctx.attempt == 1:
            raise RetryAfter(30)

    await Worker(backend, once_more).run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.FAILED


async def test_drain_waits_in_real_time_for_a_retry_due_soon() -> None:
    async with conveyor.open("memory") as backend:  # the system clock
        task_id = await backend.push("x")
        attempts: list[int] = []

        async def once_more(_: str, ctx: TaskContext) -> str:
            attempts.append(ctx.attempt)
            if ctx.attempt == 1:
                raise RetryAfter(0.2)
            return "second"

        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(Worker(backend, once_more).drain(within=10), timeout=30)
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.result) == (Status.DONE, "second")
        assert attempts == [1, 2]
        assert loop.time() - began >= 0.2  # it waited for the retry, it did not run it early


class Unlisted:
    """A memory backend without any listing: drain knows only the retries it acked itself."""

    def __init__(self, clock: ManualClock) -> None:
        self.inner = conveyor.open("memory", clock=clock)
        self.config = self.inner.plugin.config  # its clock: the facade stamps run_at with it

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        async for item in self.inner.hooks.poll(worker):
            yield item

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        await self.inner.hooks.ack(task, outcome)

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.inner.hooks.push(tasks)

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        return await self.inner.hooks.fetch_by_id(task_id)


async def test_drain_on_a_backend_that_cannot_list_follows_its_own_retries(
    clock: ManualClock,
) -> None:
    backend = Backend(Unlisted(clock), name="unlisted")
    assert not backend.supports("list_tasks")
    task_id = await backend.push("x")

    async def once_more(_: str, ctx: TaskContext) -> str:
        if ctx.attempt == 1:
            raise RetryAfter(90)
        return "second"

    await asyncio.wait_for(Worker(backend, once_more, clock=clock).drain(within=300), timeout=30)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, "second")


@pytest.mark.parametrize("within", [-1, float("nan"), "10", True])
def test_drain_refuses_a_horizon_that_is_not_a_duration(backend: Backend, within: Any) -> None:
    worker = Worker(backend, lambda a: None)
    with pytest.raises(ValueError, match="within must be zero or more seconds"):
        asyncio.run(worker.drain(within=within))


class FrozenClock:
    """A clock that never moves and is not a ManualClock: nothing to wait for."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_drain_with_a_clock_that_never_moves_ends_instead_of_waiting_for_ever(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("later", delay=60)

    async def handle(_: str) -> None:
        return None

    frozen = FrozenClock(clock.time())
    await asyncio.wait_for(Worker(backend, handle, clock=frozen).drain(within=600), timeout=30)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.PENDING
