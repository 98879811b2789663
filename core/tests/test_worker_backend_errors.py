"""A failing backend is logged and retried; it never ends the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import conveyor
from conveyor import Backend, Status, Task, TaskId, Worker, WorkerInfo, hookimpl
from conveyor.events import Error, Event, Heartbeat
from conveyor.outcome import Outcome


class Flaky:
    """A memory backend whose ``poll`` (and ``heartbeat``) raise the first few times."""

    def __init__(
        self, poll_failures: int, heartbeat_failures: int = 0, ack_failures: int = 0
    ) -> None:
        self.inner = conveyor.open("memory")
        self.poll_failures = poll_failures
        self.heartbeat_failures = heartbeat_failures
        self.ack_failures = ack_failures
        self.polls_started = 0

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        self.polls_started += 1
        if self.poll_failures:
            self.poll_failures -= 1
            raise ConnectionError("store unreachable")
        async for item in self.inner.hooks.poll(worker):
            yield item

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        if self.heartbeat_failures:
            self.heartbeat_failures -= 1
            raise ConnectionError("heartbeat lost")
        await self.inner.hooks.heartbeat(worker)

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        if self.ack_failures:
            self.ack_failures -= 1
            raise ConnectionError("ack lost")
        await self.inner.hooks.ack(task, outcome)

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.inner.hooks.push(tasks)

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        return await self.inner.hooks.fetch_by_id(task_id)


async def test_a_poll_that_raises_three_times_then_recovers_keeps_the_worker() -> None:
    flaky = Flaky(poll_failures=3)
    backend = Backend(flaky, name="flaky")
    ids = [await backend.push(n) for n in range(5)]
    events: list[Event] = []

    async def square(n: int) -> int:
        return n * n

    worker = Worker(backend, square, error_backoff=0.001, listeners=[events.append])
    await worker.run(burst=True)
    for n, task_id in enumerate(ids):
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.result) == (Status.DONE, n * n)
    backend_errors = [e for e in events if isinstance(e, Error) and e.task is None]
    assert [str(e.error) for e in backend_errors] == ["store unreachable"] * 3
    assert flaky.polls_started == 4


async def test_a_failing_ack_is_retried() -> None:
    flaky = Flaky(poll_failures=0, ack_failures=1)
    backend = Backend(flaky, name="flaky")
    task_id = await backend.push(3)
    events: list[Event] = []

    async def square(n: int) -> int:
        return n * n

    await Worker(backend, square, error_backoff=0.001, listeners=[events.append]).run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and (task.status, task.result) == (Status.DONE, 9)
    assert [str(e.error) for e in events if isinstance(e, Error)] == ["ack lost"]


async def test_failing_heartbeats_are_retried() -> None:
    flaky = Flaky(poll_failures=0, heartbeat_failures=2)
    backend = Backend(flaky, name="flaky")
    events: list[Event] = []
    beat = asyncio.Event()

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event, Heartbeat):
            beat.set()

    async def handle(_: Any) -> None:
        return None

    worker = Worker(
        backend, handle, heartbeat_interval=0.001, error_backoff=0.001, handle_signals=False
    )
    worker.on(listen)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(beat.wait(), timeout=10)
    worker.stop()
    await running
    failures = [e for e in events if isinstance(e, Error)]
    assert [str(e.error) for e in failures] == ["heartbeat lost"] * 2


async def test_a_backend_without_ack_just_runs_tasks() -> None:
    """At-most-once: the backend removes what it hands out; the worker acks nothing."""
    queue: list[bytes] = [b"1", b"2", b"3"]

    class Fire:
        @hookimpl
        async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
            while queue:
                yield Task(TaskId.new(), queue.pop(0))
            yield None

    seen: list[int] = []

    async def handle(n: int) -> None:
        seen.append(n)

    backend = Backend(Fire(), name="fire")
    assert not backend.supports("ack")
    await Worker(backend, handle).run(burst=True)
    assert seen == [1, 2, 3]
