"""The json backend: every hook, each one short critical section over the journal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import attrs

from conveyor import (
    Filter,
    Outcome,
    QueueInfo,
    RunningWorker,
    Statistic,
    Task,
    TaskId,
    TaskNotFound,
    TaskResult,
    WorkerInfo,
    hookimpl,
    rules,
)
from conveyor.rules.authoring import at
from conveyor_json.combine import FALLBACK
from conveyor_json.config import JsonConfig, config_from_url
from conveyor_json.journal import Journal, Section
from conveyor_json.listing import metrics_of, page_of, queues_of, result_of, workers_of
from conveyor_json.state import FINAL, State, to_us, worker_record
from conveyor_json.store import Store

__all__ = ["JsonBackend"]

Records = list[dict[str, Any]]
T = TypeVar("T")


def _now_us(clock: Any) -> int:
    return int(clock.time() * 1_000_000)


def _put(task: Task[bytes]) -> dict[str, Any]:
    return {
        "op": "put", "id": task.id, "q": task.queue, "s": task.status.value,
        "a": task.attempt, "ma": task.max_attempts, "at": to_us(task.run_at),
        "p": task.priority, "meta": dict(task.meta) or None, "args": task.args,
        "res": task.result, "err": task.last_error, "by": task.lock_by,
        "tok": task.lease_token,
        "until": None if task.lease_until is None else to_us(task.lease_until),
        "name": task.name,
    }  # fmt: skip


def _set(task: Task[bytes]) -> dict[str, Any]:
    """The ``set`` record that gives a stored task the mutable fields of ``task``
    (a rule's result)."""
    return {
        "op": "set", "id": task.id, "s": task.status.value, "a": task.attempt,
        "at": to_us(task.run_at), "res": task.result, "err": task.last_error,
        "by": task.lock_by, "tok": task.lease_token,
        "until": None if task.lease_until is None else to_us(task.lease_until),
    }  # fmt: skip


def _stored(state: State, task_id: TaskId) -> Task[bytes] | None:
    entry = state.tasks.get(task_id)
    return None if entry is None else entry.task()


class JsonBackend:
    """One queue of a json store; ``make_shared`` gives more queues over the same handle."""

    Config = JsonConfig
    config_from_url = staticmethod(config_from_url)

    def __init__(self, config: JsonConfig, store: Store | None = None) -> None:
        self.config = config
        self.clock = config.clock
        if store is None:
            store = Store(config)
        self._store = store
        store.users += 1
        self._closed = False

    @property
    def journal(self) -> Journal:
        """The open handle on the store file (a fresh one after a failure)."""
        return self._store.journal

    @property
    def path(self) -> str:
        """The store file, as an absolute path."""
        return self._store.journal.path

    async def _run(self, section: Section[T]) -> T:
        """Run ``section`` on the current journal (reopened if it broke); not waited for."""
        journal = self._store.ready() or await self._store.current()
        result, _ = await journal.run(section, self.config.lock_timeout)
        return result

    async def _write(self, section: Section[T]) -> T:
        """Run ``section`` and wait until what it wrote is on disk."""
        store = self._store
        loop = asyncio.get_running_loop()
        journal = store.ready(loop) or await store.current()
        if store.commit.inline(loop):
            # Blocks this thread, whose loop has nothing else to run, until the record is
            # on disk; threads doing so at once share one write and one fsync.
            done = journal.combine(section)
            if done is not FALLBACK:
                return cast(T, done)
        result, mark = await journal.run(section, self.config.lock_timeout)
        if not store.commit.done_now(journal.commit, mark):  # (no coroutine when done)
            await store.commit.durable(journal.commit, mark)
        return result

    async def _view(self, look: Callable[[State], T]) -> T:
        """What ``look`` makes of the state, caught up with other processes' writes.

        It runs under the lock: other threads of the process share the state.
        """
        return await self._run(lambda state: ([], look(state)))

    # --- Backend ----------------------------------------------------------------------

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        queue, lease, clock = self.config.queue, self.config.lease_seconds, self.clock
        name = worker.name

        def claim(state: State) -> tuple[Records, TaskId | None]:
            now = _now_us(clock)
            entry = state.next_ready(queue, now)
            if entry is None:
                return [], None
            claimed = rules.claim(entry.task(), name, now=at(now / 1e6), lease_seconds=lease)
            return [_set(claimed)], claimed.id

        def read_back(tid: TaskId | None) -> Task[bytes] | None:
            # As stored, read under the lock (another thread may change it next).
            return None if tid is None else self.journal.state.tasks[tid].task()

        async def take() -> Task[bytes] | None:
            journal = await self._store.current()
            return await journal.run_then(claim, read_back, self.config.lock_timeout)

        idle = False
        while True:
            task = await take()
            if task is None:
                if idle:
                    # Only after reporting idle once: wait rather than spin.
                    await self._wait_ready(queue)
                    task = await take()
                if task is None:
                    idle = True
                    yield None
                    continue
            idle = False
            yield task

    async def _wait_ready(self, queue: str) -> None:
        """Wait for a task of ``queue`` to become ready: pushed by this process (woken at
        once) or another (seen within ``poll_interval``), or a delayed one coming due;
        at most ``idle_wait``."""
        loop, clock = asyncio.get_running_loop(), self.clock
        deadline = loop.time() + self.config.idle_wait
        while True:
            due = await self._view(lambda state: state.next_due_us(queue))
            left = deadline - loop.time()
            if due is not None:
                left = min(left, due / 1e6 - clock.time())
            if left <= 0:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            journal = self.journal
            journal.watch_ready(queue, waiter)
            try:
                await asyncio.wait_for(waiter, min(left, self.config.poll_interval))
                return
            except TimeoutError:
                pass
            finally:
                journal.unwatch_ready(queue, waiter)
            if self.journal.changed():
                # Another process wrote: catch up, and stop waiting only if it made
                # something of this queue ready (not for its heartbeats or other queues).
                ready = await self._view(
                    lambda state: state.next_ready(queue, _now_us(clock)) is not None
                )
                if ready:
                    return

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        now = _now_us(self.clock)
        until = now + int(self.config.lease_seconds * 1e6)
        await self._run(
            lambda _: ([{"op": "beat", "w": worker.name, "at": now, "until": until}], None)
        )

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        def section(state: State) -> tuple[Records, None]:
            return [_set(rules.settle(_stored(state, task.id), task, outcome))], None

        await self._write(section)

    # --- TaskSink ---------------------------------------------------------------------

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        records = [_put(task) for task in tasks]
        await self._write(lambda _: (records, None))
        return [task.id for task in tasks]

    @hookimpl
    async def push_weak(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.push(tasks)

    # --- task management ----------------------------------------------------------------

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        def look(state: State) -> Task[bytes] | None:
            entry = state.tasks.get(task_id)
            return None if entry is None else entry.task()

        return await self._view(look)

    @hookimpl
    async def update(self, task: Task[bytes]) -> None:
        def section(state: State) -> tuple[Records, None]:
            stored = _stored(state, task.id)
            if stored is None:
                raise TaskNotFound(f"no task {task.id} to update in {self.path}")
            return [_put(rules.update(stored, task))], None

        await self._write(section)

    @hookimpl
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        def section(state: State) -> tuple[Records, None]:
            stored = _stored(state, task.id)
            if stored is None:
                raise TaskNotFound(f"no task {task.id} to reschedule in {self.path}")
            return [_set(rules.reschedule(stored, task, run_at))], None

        await self._write(section)

    @hookimpl
    async def vacuum(self) -> int:
        journal = await self._store.current()
        removed, _ = await journal.run(lambda _: ([], journal.compact(keep_final=False)))
        return removed

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        clock = self.clock

        def section(state: State) -> tuple[Records, bool]:
            stored = _stored(state, task_id)
            resumed = None if stored is None else rules.resume(stored, at(clock.time()))
            return ([], False) if resumed is None else ([_set(resumed)], True)

        return await self._write(section)

    @hookimpl
    async def resume_abandoned(self) -> int:
        clock = self.clock

        def section(state: State) -> tuple[Records, int]:
            now_us = _now_us(clock)
            now = at(now_us / 1e6)
            records: Records = []
            for entry in list(state.expired(now_us)):
                abandoned = rules.abandon(entry.task(), now)
                if abandoned is not None:
                    records.append(_set(abandoned))
            return records, len(records)

        return await self._write(section)

    @hookimpl
    async def register_worker(self, worker: WorkerInfo) -> None:
        now = _now_us(self.clock)
        await self._run(lambda _: ([worker_record(worker, now)], None))

    # --- Expose ---------------------------------------------------------------------------

    @hookimpl
    async def list_tasks(self, queue: str, filter: Filter) -> Sequence[Task[bytes]]:
        return await self._view(lambda state: page_of(state.tasks, filter, queue))

    @hookimpl
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        return await self._view(lambda state: page_of(state.tasks, filter))

    @hookimpl
    async def list_queues(self) -> Sequence[QueueInfo]:
        return await self._view(queues_of)

    @hookimpl
    async def list_workers(self, queue: str | None) -> Sequence[RunningWorker]:
        return await self._view(lambda state: workers_of(state, queue))

    @hookimpl
    async def metrics(self, queue: str | None) -> Sequence[Statistic]:
        return await self._view(lambda state: metrics_of(state.tasks, queue))

    # --- WaitForCompletion -----------------------------------------------------------------

    @hookimpl
    async def wait_for(
        self, task_ids: Sequence[TaskId], timeout: float | None
    ) -> AsyncIterator[TaskResult[bytes]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pending = list(dict.fromkeys(task_ids))

        def missing(state: State) -> TaskId | None:
            return next((tid for tid in pending if tid not in state.tasks), None)

        absent = await self._view(missing)
        if absent is not None:
            raise TaskNotFound(f"no task {absent} to wait for in {self.path}")
        while True:
            waiter: asyncio.Future[None] = loop.create_future()

            def sort(
                state: State,
                pending: list[TaskId] = pending,
                waiter: asyncio.Future[None] = waiter,
            ) -> tuple[list[TaskResult[bytes]], list[TaskId]]:
                # Under the lock, so that an ack of another thread either is seen
                # here or wakes the waiter registered here.
                done, left = [], []
                for tid in pending:
                    entry = state.tasks.get(tid)
                    if entry is None:
                        raise TaskNotFound(f"task {tid} was removed from {self.path} while awaited")
                    if entry.status in FINAL:
                        done.append(result_of(entry))
                    else:
                        left.append(tid)
                if left:
                    self.journal.watch_final(left, waiter)
                return done, left

            done, pending = await self._view(sort)
            for result in done:
                yield result
            if not pending:
                return
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{len(pending)} task(s) had not finished after {timeout} s")
            # Acks of this process wake us at once; other processes' are seen by polling.
            wait = self.config.poll_interval
            try:
                await asyncio.wait_for(waiter, wait if remaining is None else min(wait, remaining))
            except TimeoutError:
                pass

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        def look(state: State) -> list[TaskResult[bytes]]:
            entries = (state.tasks.get(tid) for tid in task_ids)
            return [result_of(e) for e in entries if e is not None and e.status in FINAL]

        return await self._view(look)

    # --- ConfigExt, MakeShared -------------------------------------------------------------

    @hookimpl
    def get_queue(self) -> str:
        return self.config.queue

    @hookimpl
    def make_shared(self, queue: str) -> object:
        return JsonBackend(attrs.evolve(self.config, queue=queue), self._store)

    @hookimpl
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._store.close()

    def __repr__(self) -> str:
        return f"JsonBackend({self.path!r}, queue={self.config.queue!r})"
