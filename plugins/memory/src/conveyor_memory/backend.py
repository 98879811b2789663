"""The memory backend: in-process queues with leases, delays, priorities and results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import attrs

from conveyor import (
    Filter,
    Outcome,
    QueueInfo,
    RunningWorker,
    Statistic,
    Status,
    Task,
    TaskId,
    TaskNotFound,
    TaskResult,
    WorkerInfo,
    hookimpl,
    rules,
)
from conveyor.rules.authoring import at, status_statistics
from conveyor_memory.store import MemoryStore

__all__ = ["MemoryBackend", "MemoryConfig"]


@attrs.frozen(kw_only=True)
class MemoryConfig(rules.BackendConfig):
    """``queue``, ``lease_seconds``, ``clock`` (``conveyor.rules.BackendConfig``) and
    ``idle_wait``: how long an empty poll waits for a push before reporting idle."""

    idle_wait: float = attrs.field(default=1.0, validator=rules.seconds(0.0, low_open=False))


class MemoryBackend:
    """One queue of a ``MemoryStore``; ``make_shared`` gives more queues over the same store."""

    Config = MemoryConfig

    def __init__(
        self, config: MemoryConfig | None = None, store: MemoryStore | None = None
    ) -> None:
        self.config = config or MemoryConfig()
        self.store = store or MemoryStore(self.config.clock)
        self.store.users += 1

    # --- Backend ------------------------------------------------------------------

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        store, queue, lease = self.store, self.config.queue, self.config.lease_seconds
        held = store.held.setdefault(worker.name, set())
        take, tasks, now, claim, name = (
            store.take,
            store.tasks,
            store.clock.time,
            rules.claim,
            worker.name,
        )
        idle = False
        while True:
            task = take(queue)
            if task is None:
                if idle:
                    # Only after reporting idle once: wait for a push rather than spin.
                    await self._wait(queue)
                    task = take(queue)
                if task is None:
                    idle = True
                    yield None
                    continue
            idle = False
            claimed = claim(task, name, now=at(now()), lease_seconds=lease)
            tasks[task.id] = claimed
            held.add(task.id)
            yield claimed

    async def _wait(self, queue: str) -> None:
        """Wait for a push, the next delayed task, or ``idle_wait``, whichever is first."""
        store = self.store
        timeout = self.config.idle_wait
        due = store.next_due(queue)
        if due is not None:
            timeout = max(0.0, min(timeout, due - store.clock.time()))
        if timeout <= 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        store.queue(queue).waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass

    def _now(self) -> datetime:
        return at(self.store.clock.time())

    def _release(self, task: Task[bytes]) -> None:
        """Forget that ``task``'s holder (if any) holds it."""
        if task.lock_by is not None:
            self.store.held.get(task.lock_by, set()).discard(task.id)

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        store, now, lease = self.store, self._now(), self.config.lease_seconds
        for tid in store.held.get(worker.name, ()):
            task = store.tasks.get(tid)
            if task is not None:
                store.tasks[tid] = rules.extend(task, worker.name, now=now, lease_seconds=lease)
        record = store.workers.get(worker.name)
        if record is not None:
            record["last_heartbeat"] = now

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        stored = self.store.tasks.get(task.id)
        settled = rules.settle(stored, task, outcome)
        self._release(task)
        self.store.save(settled)

    # --- TaskSink -------------------------------------------------------------------

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        store = self.store
        for task in tasks:
            store.tasks[task.id] = task
            store.enqueue(task)
        return [task.id for task in tasks]

    @hookimpl
    async def push_weak(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.push(tasks)

    # --- task management ------------------------------------------------------------

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        return self.store.tasks.get(task_id)

    @hookimpl
    async def update(self, task: Task[bytes]) -> None:
        self.store.save(rules.update(self.store.tasks.get(task.id), task))

    @hookimpl
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        stored = self.store.tasks.get(task.id)
        new = rules.reschedule(stored, task, run_at)
        self._release(stored)  # type: ignore[arg-type] # reschedule raised if it was None
        self.store.save(new)

    @hookimpl
    async def vacuum(self) -> int:
        store = self.store
        gone = [tid for tid, task in store.tasks.items() if rules.vacuumable(task)]
        for tid in gone:
            del store.tasks[tid]
        return len(gone)

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        stored = self.store.tasks.get(task_id)
        new = None if stored is None else rules.resume(stored, self._now())
        if stored is None or new is None:
            return False
        self._release(stored)
        self.store.save(new)
        return True

    @hookimpl
    async def resume_abandoned(self) -> int:
        store, now, count = self.store, self._now(), 0
        for held in store.held.values():
            for tid in list(held):
                task = store.tasks.get(tid)
                back = None if task is None else rules.abandon(task, now)
                if task is None or back is not None:
                    held.discard(tid)
                if back is not None:
                    store.save(back)
                    count += 1
        return count

    @hookimpl
    async def register_worker(self, worker: WorkerInfo) -> None:
        self.store.workers[worker.name] = {"info": worker, "last_heartbeat": self._now()}

    # --- Expose ---------------------------------------------------------------------

    def _page(self, tasks: list[Task[bytes]], filter: Filter) -> list[Task[bytes]]:
        if filter.status is not None:
            tasks = [t for t in tasks if t.status is filter.status]
        if filter.name is not None:
            tasks = [t for t in tasks if t.name == filter.name]
        tasks.sort(key=lambda t: t.id)
        return tasks[filter.offset : filter.offset + filter.limit]

    @hookimpl
    async def list_tasks(self, queue: str, filter: Filter) -> Sequence[Task[bytes]]:
        return self._page([t for t in self.store.tasks.values() if t.queue == queue], filter)

    @hookimpl
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        return self._page(list(self.store.tasks.values()), filter)

    @hookimpl
    async def list_queues(self) -> Sequence[QueueInfo]:
        names = {t.queue for t in self.store.tasks.values()}
        names.update(r["info"].queue for r in self.store.workers.values())
        result = []
        for name in sorted(names):
            workers = [n for n, r in self.store.workers.items() if r["info"].queue == name]
            result.append(QueueInfo(name, list(await self.metrics(name)), workers, []))
        return result

    @hookimpl
    async def list_workers(self, queue: str | None) -> Sequence[RunningWorker]:
        rows = []
        for name, record in sorted(self.store.workers.items()):
            info: WorkerInfo = record["info"]
            if queue is None or info.queue == queue:
                rows.append(
                    RunningWorker(
                        name,
                        info.queue,
                        "memory",
                        info.started_at,
                        record["last_heartbeat"],
                        info.layers,
                    )
                )
        return rows

    @hookimpl
    async def metrics(self, queue: str | None) -> Sequence[Statistic]:
        counts = dict.fromkeys(Status, 0)
        for task in self.store.tasks.values():
            if queue is None or task.queue == queue:
                counts[task.status] += 1
        return status_statistics(counts)

    # --- WaitForCompletion -------------------------------------------------------------

    def _result(self, task: Task[bytes]) -> TaskResult[bytes]:
        error = task.last_error if task.status is Status.KILLED else None
        return TaskResult(task.id, task.status, task.result, error)

    @hookimpl
    async def wait_for(
        self, task_ids: Sequence[TaskId], timeout: float | None
    ) -> AsyncIterator[TaskResult[bytes]]:
        store = self.store
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pending: dict[asyncio.Future[None], TaskId] = {}
        for tid in dict.fromkeys(task_ids):
            task = store.tasks.get(tid)
            if task is None:
                raise TaskNotFound(f"no task {tid} to wait for")
            if task.status.is_final:
                yield self._result(task)
            else:
                waiter = loop.create_future()
                store.finished_waiters.setdefault(tid, []).append(waiter)
                pending[waiter] = tid
        while pending:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise TimeoutError(f"{len(pending)} task(s) had not finished after {timeout} s")
            for waiter in done:
                tid = pending.pop(waiter)
                yield self._result(store.tasks[tid])

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        tasks = (self.store.tasks.get(tid) for tid in task_ids)
        return [self._result(t) for t in tasks if t is not None and t.status.is_final]

    # --- ConfigExt, MakeShared -----------------------------------------------------------

    @hookimpl
    def get_queue(self) -> str:
        return self.config.queue

    @hookimpl
    def make_shared(self, queue: str) -> object:
        return MemoryBackend(attrs.evolve(self.config, queue=queue), self.store)

    @hookimpl
    async def close(self) -> None:
        self.store.users -= 1
