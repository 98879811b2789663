"""The memory backend: in-process queues with leases, delays, priorities and results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import attrs

from conveyor import (
    Done,
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
        take, tasks, now, build, token, name, running = (
            store.take, store.tasks, store.time, rules.build, rules.new_token, worker.name,
            Status.RUNNING,
        )  # fmt: skip
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
            # rules.claim inlined (take yields only ready tasks; the rules table holds this
            # to the rule): one datetime for the lease's end, not "now" plus a timedelta.
            claimed = build(
                task.id, task.args, task.queue, running, task.attempt + 1, task.max_attempts,
                task.run_at, task.priority, task.result, task.last_error, name, token(),
                at(now() + lease), task.meta, task.name,
            )  # fmt: skip
            tasks[task.id] = claimed
            held.add(task.id)
            yield claimed

    async def _wait(self, queue: str) -> None:
        """Wait for a push, the next delayed task, or ``idle_wait``, whichever is first."""
        store = self.store
        timeout = self.config.idle_wait
        due = store.next_due(queue)
        if due is not None:
            timeout = max(0.0, min(timeout, due - store.time()))
        if timeout <= 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        store.queue(queue).waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass

    def _now(self) -> datetime:
        return at(self.store.time())

    def _release(self, task: Task[bytes]) -> None:
        """Forget that ``task``'s holder (if any) holds it."""
        if task.lock_by is not None:
            self.store.held.get(task.lock_by, set()).discard(task.id)

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        store, now, lease = self.store, self._now(), self.config.lease_seconds
        for tid in store.held.get(worker.name, ()):
            task = store.get(tid)
            if task is not None:
                store.tasks[tid] = rules.extend(task, worker.name, now=now, lease_seconds=lease)
        record = store.workers.get(worker.name)
        if record is not None:
            record["last_heartbeat"] = now

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        store, tid = self.store, task.id
        stored = store.tasks.get(tid)
        if (
            type(outcome) is Done
            and type(stored) is Task
            and stored.lease_token == task.lease_token
            and stored.status is Status.RUNNING
        ):
            # The common case: held under this lease, so rules.settle would make it DONE
            # with this result. The record is built when someone reads it (store.get).
            store.tasks[tid] = (stored, outcome.result)
            held = store.held.get(task.lock_by or "")
            if held is not None:
                held.discard(tid)
            store.entry.pop(tid, None)
            if store.finished_waiters:
                store.finished(tid)
            return
        settled = rules.settle(store.get(tid), task, outcome)
        held = store.held.get(task.lock_by or "")
        if held is not None:
            held.discard(tid)
        store.save(settled)

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
        return self.store.get(task_id)

    @hookimpl
    async def update(self, task: Task[bytes]) -> None:
        self.store.save(rules.update(self.store.get(task.id), task))

    @hookimpl
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        stored = self.store.get(task.id)
        new = rules.reschedule(stored, task, run_at)
        self._release(stored)  # type: ignore[arg-type] # reschedule raised if it was None
        self.store.save(new)

    @hookimpl
    async def vacuum(self) -> int:
        store = self.store
        final = rules.FINAL_STATES  # what rules.vacuumable takes, by status alone
        gone = [task.id for task, status in store.states() if status in final]
        for tid in gone:
            del store.tasks[tid]
        return len(gone)

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        stored = self.store.get(task_id)
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
                task = store.get(tid)
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

    def _page(self, rows: list[tuple[Task[bytes], Status]], filter: Filter) -> list[Task[bytes]]:
        """One page of ``rows`` (``store.states()``); only its records are built."""
        if filter.status is not None:
            rows = [row for row in rows if row[1] is filter.status]
        if filter.name is not None:
            rows = [row for row in rows if row[0].name == filter.name]
        rows.sort(key=lambda row: row[0].id)
        get = self.store.get
        page = [get(task.id) for task, _ in rows[filter.offset : filter.offset + filter.limit]]
        return page  # type: ignore[return-value] # every id listed is stored

    @hookimpl
    async def list_tasks(self, queue: str, filter: Filter) -> Sequence[Task[bytes]]:
        return self._page([row for row in self.store.states() if row[0].queue == queue], filter)

    @hookimpl
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        return self._page(self.store.states(), filter)

    @hookimpl
    async def list_queues(self) -> Sequence[QueueInfo]:
        names = {task.queue for task, _ in self.store.states()}
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
        for task, status in self.store.states():
            if queue is None or task.queue == queue:
                counts[status] += 1
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
            task = store.get(tid)
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
                task = store.get(tid)
                if task is None:
                    raise TaskNotFound(f"task {tid} finished, then was vacuumed before it was read")
                yield self._result(task)

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        tasks = (self.store.get(tid) for tid in task_ids)
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
