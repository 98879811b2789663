"""The json backend: every hook, each one short critical section over the journal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

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
from conveyor_json.config import JsonConfig, config_from_url
from conveyor_json.journal import Journal, Section
from conveyor_json.listing import metrics_of, page_of, result_of
from conveyor_json.state import FINAL, State, from_us, to_us, worker_record
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
        journal = await self._store.current()
        result, _ = await journal.run(section)
        return result

    async def _write(self, section: Section[T]) -> T:
        """Run ``section`` and wait until what it wrote is on disk."""
        journal = await self._store.current()
        result, mark = await journal.run(section)
        await journal.durable(mark)
        return result

    async def _read(self) -> State:
        """The state, caught up with other processes' writes."""
        await self._run(lambda _: ([], None))
        return self._store.journal.state

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

        idle = False
        while True:
            tid = await self._run(claim)
            if tid is None:
                if idle:
                    # Only after reporting idle once: wait rather than spin.
                    await self._wait_ready(queue)
                    tid = await self._run(claim)
                if tid is None:
                    idle = True
                    yield None
                    continue
            idle = False
            yield self.journal.state.tasks[tid].task()

    async def _wait_ready(self, queue: str) -> None:
        """Wait for a task of ``queue`` to become ready: pushed by this process (woken at
        once) or another (seen within ``poll_interval``), or a delayed one coming due;
        at most ``idle_wait``."""
        loop, clock = asyncio.get_running_loop(), self.clock
        deadline = loop.time() + self.config.idle_wait
        while True:
            due = self.journal.state.next_due_us(queue)
            left = deadline - loop.time()
            if due is not None:
                left = min(left, due / 1e6 - clock.time())
            if left <= 0:
                return
            waiter = loop.create_future()
            self.journal.ready_waiters.setdefault(queue, []).append(waiter)
            try:
                await asyncio.wait_for(waiter, min(left, self.config.poll_interval))
                return
            except TimeoutError:
                pass
            finally:
                waiters = self.journal.ready_waiters.get(queue)
                if waiters and waiter in waiters:
                    waiters.remove(waiter)
            if self.journal.changed():
                # Another process wrote: catch up, and stop waiting only if it made
                # something of this queue ready (not for its heartbeats or other queues).
                state = await self._read()
                if state.next_ready(queue, _now_us(clock)) is not None:
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
        entry = (await self._read()).tasks.get(task_id)
        return None if entry is None else entry.task()

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
        state = await self._read()
        return page_of((e for e in state.tasks.values() if e.queue == queue), filter)

    @hookimpl
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        return page_of((await self._read()).tasks.values(), filter)

    @hookimpl
    async def list_queues(self) -> Sequence[QueueInfo]:
        state = await self._read()
        names = {e.queue for e in state.tasks.values()}
        names.update(w.info.queue for w in state.workers.values())
        infos = []
        for name in sorted(names):
            workers = sorted(n for n, w in state.workers.items() if w.info.queue == name)
            stats = metrics_of(e for e in state.tasks.values() if e.queue == name)
            infos.append(QueueInfo(name, stats, workers, []))
        return infos

    @hookimpl
    async def list_workers(self, queue: str | None) -> Sequence[RunningWorker]:
        state = await self._read()
        return [
            RunningWorker(
                name, w.info.queue, "json", w.info.started_at, from_us(w.last_us), w.info.layers
            )
            for name, w in sorted(state.workers.items())
            if queue is None or w.info.queue == queue
        ]

    @hookimpl
    async def metrics(self, queue: str | None) -> Sequence[Statistic]:
        state = await self._read()
        return metrics_of(e for e in state.tasks.values() if queue is None or e.queue == queue)

    # --- WaitForCompletion -----------------------------------------------------------------

    @hookimpl
    async def wait_for(
        self, task_ids: Sequence[TaskId], timeout: float | None
    ) -> AsyncIterator[TaskResult[bytes]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        state = await self._read()
        pending = list(dict.fromkeys(task_ids))
        for tid in pending:
            if tid not in state.tasks:
                raise TaskNotFound(f"no task {tid} to wait for in {self.path}")
        while True:
            state = self.journal.state
            left = []
            for tid in pending:
                entry = state.tasks.get(tid)
                if entry is None:
                    raise TaskNotFound(f"task {tid} was removed from {self.path} while awaited")
                if entry.status in FINAL:
                    yield result_of(entry)
                else:
                    left.append(tid)
            pending = left
            if not pending:
                return
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{len(pending)} task(s) had not finished after {timeout} s")
            # Acks of this process wake us at once; other processes' are seen by polling.
            waiter = loop.create_future()
            for tid in pending:
                self.journal.final_waiters.setdefault(tid, []).append(waiter)
            wait = self.config.poll_interval
            try:
                await asyncio.wait_for(waiter, wait if remaining is None else min(wait, remaining))
            except TimeoutError:
                pass
            if self.journal.changed():
                await self._read()

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        tasks = (await self._read()).tasks
        entries = (tasks.get(tid) for tid in task_ids)
        return [result_of(e) for e in entries if e is not None and e.status in FINAL]

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
