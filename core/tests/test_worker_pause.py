"""A paused worker claims nothing: a poll waiting for work when ``pause()`` comes is
cancelled, not left to claim a task and hand it back (issue 14, "still open")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import conveyor
from conveyor import Backend, Status, Task, TaskId, Worker, WorkerInfo, WorkerState, hookimpl
from conveyor.events import Event, Idle
from conveyor.outcome import Outcome, Release
from conveyor.poll_strategy import Trigger


class Watched:
    """The memory backend, recording every task its poll hands out and every Release."""

    def __init__(self, asked: bool = False) -> None:
        self.inner = conveyor.open("memory")
        self.asked = asked  # True: never wait in poll, answer at once (a store to be asked)
        self.claims: list[str] = []
        self.releases = 0

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        if not self.asked:
            async for item in self.inner.hooks.poll(worker):
                if item is not None:
                    self.claims.append(json.loads(item.args))
                yield item
        while True:
            stream = self.inner.hooks.poll(worker)
            item = await anext(stream)  # a fresh stream's first answer is immediate
            await stream.aclose()
            if item is not None:
                self.claims.append(json.loads(item.args))
            yield item

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        if isinstance(outcome, Release):
            self.releases += 1
        await self.inner.hooks.ack(task, outcome)

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.inner.hooks.push(tasks)

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        return await self.inner.hooks.fetch_by_id(task_id)


async def _started_idle(worker: Worker) -> asyncio.Task[None]:
    """Run ``worker`` until it has found nothing and gone to wait in its poll."""
    idle = asyncio.Event()

    def listen(event: Event) -> None:
        if isinstance(event, Idle):
            idle.set()

    worker.on(listen)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(idle.wait(), timeout=10)
    for _ in range(10):
        await asyncio.sleep(0)  # into the poll's own wait
    return running


async def test_a_poll_waiting_when_pause_comes_claims_nothing_and_order_holds() -> None:
    watched = Watched()
    backend = Backend(watched, name="watched")
    ran: list[str] = []
    finished = asyncio.Event()

    async def handle(name: str) -> None:
        ran.append(name)
        if len(ran) == 3:
            finished.set()

    worker = Worker(backend, handle, concurrency=1, handle_signals=False)
    running = await _started_idle(worker)
    worker.pause()
    assert worker.state is WorkerState.PAUSED
    await asyncio.sleep(0.05)  # the pause is in force; the pushes come after it
    ids = [await backend.push(name) for name in ("a", "b", "c")]
    await asyncio.sleep(0.2)
    assert watched.claims == [] and watched.releases == 0
    for task_id in ids:
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.attempt) == (Status.PENDING, 0)
    worker.resume()
    await asyncio.wait_for(finished.wait(), timeout=10)
    assert ran == ["a", "b", "c"] and watched.claims == ["a", "b", "c"]
    worker.stop()
    await running


async def test_a_task_claimed_as_the_pause_comes_goes_back_to_its_place() -> None:
    """A push in the same instant as the pause can still win the race inside the backend's
    wait; the claimed task is then handed back unrun, its attempt not counted, its place kept."""
    watched = Watched()
    backend = Backend(watched, name="watched")
    ran: list[str] = []
    finished = asyncio.Event()

    async def handle(name: str) -> None:
        ran.append(name)
        if len(ran) == 3:
            finished.set()

    worker = Worker(backend, handle, concurrency=1, handle_signals=False)
    running = await _started_idle(worker)
    worker.pause()
    ids = [await backend.push(name) for name in ("a", "b", "c")]  # no yield in between
    await asyncio.sleep(0.2)
    assert watched.releases == len(watched.claims) <= 1
    for task_id in ids:
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.attempt) == (Status.PENDING, 0)
    worker.resume()
    await asyncio.wait_for(finished.wait(), timeout=10)
    # Where a released task runs is the backend's rule (hookspecs: Release keeps run_at, so
    # its place); the worker's part is to hand it back with Release, attempt uncounted.
    assert sorted(ran) == ["a", "b", "c"]
    for task_id in ids:
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.attempt) == (Status.DONE, 1)
    worker.stop()
    await running


async def test_a_pause_during_the_strategy_wait_claims_nothing() -> None:
    watched = Watched(asked=True)
    backend = Backend(watched, name="watched")
    trigger = Trigger()
    done = asyncio.Event()

    async def handle(_: str) -> None:
        done.set()

    worker = Worker(backend, handle, poll_strategy=trigger, handle_signals=False)
    running = await _started_idle(worker)  # now waiting for the trigger's tick
    worker.pause()
    task_id = await backend.push("x")
    trigger.notify()
    await asyncio.sleep(0.2)
    assert watched.claims == [] and watched.releases == 0
    worker.resume()
    trigger.notify()
    await asyncio.wait_for(done.wait(), timeout=10)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.DONE and watched.claims == ["x"]
    worker.stop()
    await running


async def test_pause_and_resume_many_times_while_tasks_flow_loses_nothing() -> None:
    watched = Watched()
    backend = Backend(watched, name="watched")
    ids = [await backend.push(str(n)) for n in range(200)]
    seen: list[str] = []
    everything = asyncio.Event()

    async def handle(name: str) -> None:
        seen.append(name)
        await asyncio.sleep(0)
        if len(seen) == len(ids):
            everything.set()

    worker = Worker(backend, handle, concurrency=4, handle_signals=False)
    running = asyncio.create_task(worker.run())
    while not everything.is_set():
        worker.pause()
        await asyncio.sleep(0.001)
        worker.resume()
        await asyncio.sleep(0.001)
    worker.stop()
    await running
    assert sorted(seen, key=int) == [str(n) for n in range(200)]
    for task_id in ids:
        task = await backend.fetch_by_id(task_id)
        assert task is not None and (task.status, task.attempt) == (Status.DONE, 1)
