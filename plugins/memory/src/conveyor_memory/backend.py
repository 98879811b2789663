"""The memory backend: in-process queues with leases, delays, priorities and results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from conveyor import (
    Filter,
    QueueInfo,
    RunningWorker,
    StaleLease,
    Statistic,
    Status,
    Task,
    TaskId,
    TaskNotFound,
    TaskResult,
    WorkerInfo,
    hookimpl,
)
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.expose import status_statistics
from conveyor.lease import check_lease, new_token
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor_memory.record import make_task
from conveyor_memory.store import MemoryStore

__all__ = ["MemoryBackend", "MemoryConfig"]

_FINAL = (Status.DONE, Status.KILLED)


def _clock(value: Any) -> Clock:
    if not callable(getattr(value, "time", None)):
        raise TypeError(f"clock must have a time() method returning epoch seconds, not {value!r}")
    return value  # type: ignore[no-any-return]


@attrs.frozen
class MemoryConfig:
    """``queue``: default queue; ``lease_seconds``: how long a claim lasts without a
    heartbeat; ``idle_wait``: how long an empty poll waits for a push before
    reporting idle; ``clock``: a ``conveyor.Clock`` (keyword only, for tests)."""

    queue: str = "default"
    lease_seconds: float = 30.0
    idle_wait: float = 1.0
    clock: Any = attrs.field(default=SYSTEM_CLOCK, converter=_clock)


_DIRECT = frozenset(
    ("args", "attempt", "run_at", "result", "last_error", "lock_by", "lease_token", "lease_until")
)


def _with(task: Task[bytes], status: Status, **changes: Any) -> Task[bytes]:
    # Same as attrs.evolve (Task has no converters or validators), built directly:
    # evolve was the largest single cost of an ack on the worker's hot path.
    if not _DIRECT.issuperset(changes):
        return attrs.evolve(task, status=task.status.check(status), **changes)
    get = changes.get
    return Task(
        task.id, get("args", task.args), task.queue, task.status.check(status),
        get("attempt", task.attempt), task.max_attempts, get("run_at", task.run_at),
        task.priority, get("result", task.result), get("last_error", task.last_error),
        get("lock_by", task.lock_by), get("lease_token", task.lease_token),
        get("lease_until", task.lease_until), task.meta, task.name,
    )  # fmt: skip


def _settled(
    task: Task[bytes],
    status: Status,
    result: Any,
    last_error: str | None,
    *,
    run_at: datetime | None = None,
    attempt: int | None = None,
) -> Task[bytes]:
    """``task`` moved to ``status`` (checked) with its lease cleared."""
    return make_task(
        task.id, task.args, task.queue, task.status.check(status),
        task.attempt if attempt is None else attempt, task.max_attempts,
        task.run_at if run_at is None else run_at, task.priority, result, last_error,
        None, None, None, task.meta, task.name,
    )  # fmt: skip


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
        store, queue = self.store, self.config.queue
        lease, clock = self.config.lease_seconds, store.clock
        held = store.held.setdefault(worker.name, set())
        take, tasks, fromtimestamp, now = (
            store.take,
            store.tasks,
            datetime.fromtimestamp,
            clock.time,
        )
        idle = False
        while True:
            task = take(queue)
            if task is None:
                if idle:
                    # Only after reporting idle once: wait for a push rather than spin.
                    await self._wait(queue)
                    task = store.take(queue)
                if task is None:
                    idle = True
                    yield None
                    continue
            idle = False
            until = fromtimestamp(now() + lease, UTC)
            claimed = make_task(
                task.id, task.args, task.queue, Status.RUNNING, task.attempt + 1,
                task.max_attempts, task.run_at, task.priority, None, task.last_error,
                worker.name, new_token(), until, task.meta, task.name,
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
            timeout = max(0.0, min(timeout, due - store.clock.time()))
        if timeout <= 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        store.queue(queue).waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        store = self.store
        until = datetime.fromtimestamp(store.clock.time() + self.config.lease_seconds, UTC)
        for tid in store.held.get(worker.name, ()):
            task = store.tasks.get(tid)
            if task is not None and task.lock_by == worker.name:
                store.tasks[tid] = attrs.evolve(task, lease_until=until)
        record = store.workers.get(worker.name)
        if record is not None:
            record["last_heartbeat"] = store.now()

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        store = self.store
        stored = store.tasks.get(task.id)
        if stored is None:
            raise StaleLease(f"task {task.id} no longer exists; the ack was refused")
        check_lease(stored, task)
        held = store.held.get(stored.lock_by or "")
        if held is not None:
            held.discard(task.id)
        # Built directly rather than with attrs.evolve: this runs once per task.
        if type(outcome) is Done:
            # The common case, spelled out: RUNNING -> DONE needs no table lookup.
            if stored.status is not Status.RUNNING:
                stored.status.check(Status.DONE)
            store.tasks[task.id] = make_task(
                stored.id, stored.args, stored.queue, Status.DONE, stored.attempt,
                stored.max_attempts, stored.run_at, stored.priority, outcome.result,
                stored.last_error, None, None, None, stored.meta, stored.name,
            )  # fmt: skip
            if store.finished_waiters:
                store.finished(task.id)
        elif type(outcome) is Retry:
            if stored.attempt >= stored.max_attempts:
                store.tasks[task.id] = _settled(stored, Status.KILLED, stored.result, outcome.error)
                store.finished(task.id)
            else:
                new = _settled(
                    stored,
                    Status.FAILED,
                    stored.result,
                    outcome.error,
                    run_at=outcome.run_at,
                )
                store.tasks[task.id] = new
                store.enqueue(new)
        elif type(outcome) is Kill:
            store.tasks[task.id] = _settled(stored, Status.KILLED, stored.result, outcome.error)
            store.finished(task.id)
        elif type(outcome) is Release:
            new = _settled(
                stored, Status.PENDING, stored.result, stored.last_error,
                attempt=max(0, stored.attempt - 1),
            )  # fmt: skip
            store.tasks[task.id] = new
            store.enqueue(new)
        else:
            raise TypeError(f"unknown outcome {outcome!r}")

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
        store = self.store
        stored = store.tasks.get(task.id)
        if stored is None:
            raise TaskNotFound(f"no task {task.id} to update")
        if task.status is not stored.status:
            stored.status.check(task.status)
        store.entry.pop(task.id, None)
        store.tasks[task.id] = task
        if task.status in (Status.PENDING, Status.FAILED):
            store.enqueue(task)
        elif task.status in _FINAL:
            store.finished(task.id)

    @hookimpl
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        store = self.store
        stored = store.tasks.get(task.id)
        if stored is None:
            raise TaskNotFound(f"no task {task.id} to reschedule")
        if task.lease_token is not None:
            check_lease(stored, task)
        store.held.get(stored.lock_by or "", set()).discard(task.id)
        new = attrs.evolve(
            stored,
            status=stored.status.check(Status.PENDING)
            if stored.status is not Status.PENDING
            else stored.status,
            run_at=run_at,
            lock_by=None,
            lease_token=None,
            lease_until=None,
        )
        store.tasks[task.id] = new
        store.enqueue(new)

    @hookimpl
    async def vacuum(self) -> int:
        store = self.store
        gone = [tid for tid, task in store.tasks.items() if task.status in _FINAL]
        for tid in gone:
            del store.tasks[tid]
        return len(gone)

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        store = self.store
        stored = store.tasks.get(task_id)
        if stored is None or stored.status not in (Status.FAILED, Status.KILLED, Status.RUNNING):
            return False
        store.held.get(stored.lock_by or "", set()).discard(task_id)
        attempt = 0 if stored.status is Status.KILLED else stored.attempt
        new = _with(
            stored, Status.PENDING, attempt=attempt, run_at=store.now(),
            lock_by=None, lease_token=None, lease_until=None,
        )  # fmt: skip
        store.tasks[task_id] = new
        store.enqueue(new)
        return True

    @hookimpl
    async def resume_abandoned(self) -> int:
        store = self.store
        now = store.now()
        count = 0
        for worker, held in store.held.items():
            for tid in list(held):
                task = store.tasks.get(tid)
                if task is None or task.lease_until is None or task.lease_until > now:
                    continue
                held.discard(tid)
                clear = {"lock_by": None, "lease_token": None, "lease_until": None}
                error = f"worker {worker!r} stopped renewing its lease (attempt {task.attempt})"
                if task.attempt >= task.max_attempts:
                    store.tasks[tid] = _with(task, Status.KILLED, last_error=error, **clear)
                    store.finished(tid)
                else:
                    new = _with(task, Status.PENDING, last_error=error, **clear)
                    store.tasks[tid] = new
                    store.enqueue(new)
                count += 1
        return count

    @hookimpl
    async def register_worker(self, worker: WorkerInfo) -> None:
        now = self.store.now()
        self.store.workers[worker.name] = {"info": worker, "last_heartbeat": now}

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
            if task.status in _FINAL:
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
        return [self._result(t) for t in tasks if t is not None and t.status in _FINAL]

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
