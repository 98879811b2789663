"""The json backend: every hook, each one short critical section over the journal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
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
from conveyor.lease import check_lease, new_token
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor_json.config import JsonConfig, config_from_url
from conveyor_json.journal import Journal
from conveyor_json.listing import metrics_of, page_of, result_of
from conveyor_json.state import FINAL, Entry, State, from_us, set_record, to_us, worker_record

__all__ = ["JsonBackend"]

Records = list[dict[str, Any]]


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


def _lease_check(entry: Entry | None, task: Task[bytes]) -> Entry:
    if entry is None:
        raise StaleLease(f"task {task.id} no longer exists; the write was refused")
    if entry.status is not Status.RUNNING or entry.token != task.lease_token:
        check_lease(entry.task(), task)  # raises, with the core's explanation
    return entry


class JsonBackend:
    """One queue of a json store; ``make_shared`` gives more queues over the same handle."""

    Config = JsonConfig
    config_from_url = staticmethod(config_from_url)

    def __init__(self, config: JsonConfig, journal: Journal | None = None) -> None:
        self.config = config
        self.clock = config.clock
        if journal is None:
            journal = Journal(
                config.path, fsync=config.fsync, compact_threshold=config.compact_threshold
            )
        self.journal = journal
        journal.users += 1
        self._closed = False

    @property
    def path(self) -> str:
        """The store file, as an absolute path."""
        return self.journal.path

    async def _read(self) -> State:
        """The state, caught up with other processes' writes."""
        await self.journal.run(lambda _: ([], None))
        return self.journal.state

    # --- Backend ----------------------------------------------------------------------

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        queue, lease_us, clock = self.config.queue, int(self.config.lease_seconds * 1e6), self.clock
        name = worker.name

        def claim(state: State) -> tuple[Records, TaskId | None]:
            now = _now_us(clock)
            entry = state.next_ready(queue, now)
            if entry is None:
                return [], None
            record = set_record(
                entry, Status.RUNNING, a=entry.attempt + 1, res=None,
                by=name, tok=new_token(), until=now + lease_us,
            )  # fmt: skip
            return [record], entry.id

        idle = False
        while True:
            tid, _ = await self.journal.run(claim)
            if tid is None:
                if idle:
                    # Only after reporting idle once: wait rather than spin.
                    await self._wait_ready(queue)
                    tid, _ = await self.journal.run(claim)
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
        journal, loop, clock = self.journal, asyncio.get_running_loop(), self.clock
        deadline = loop.time() + self.config.idle_wait
        while True:
            due = journal.state.next_due_us(queue)
            left = deadline - loop.time()
            if due is not None:
                left = min(left, due / 1e6 - clock.time())
            if left <= 0:
                return
            waiter = loop.create_future()
            journal.ready_waiters.setdefault(queue, []).append(waiter)
            try:
                await asyncio.wait_for(waiter, min(left, self.config.poll_interval))
                return
            except TimeoutError:
                pass
            finally:
                waiters = journal.ready_waiters.get(queue)
                if waiters and waiter in waiters:
                    waiters.remove(waiter)
            if journal.changed():
                # Another process wrote: catch up, and stop waiting only if it made
                # something of this queue ready (not for its heartbeats or other queues).
                state = await self._read()
                if state.next_ready(queue, _now_us(clock)) is not None:
                    return

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        now = _now_us(self.clock)
        until = now + int(self.config.lease_seconds * 1e6)
        await self.journal.run(
            lambda _: ([{"op": "beat", "w": worker.name, "at": now, "until": until}], None)
        )

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        def section(state: State) -> tuple[Records, None]:
            entry = _lease_check(state.tasks.get(task.id), task)
            if type(outcome) is Done:
                record = set_record(entry, Status.DONE, res=outcome.result)
            elif type(outcome) is Retry:
                if entry.attempt >= entry.max_attempts:
                    record = set_record(entry, Status.KILLED, err=outcome.error)
                else:
                    when = to_us(outcome.run_at)
                    record = set_record(entry, Status.FAILED, at=when, err=outcome.error)
            elif type(outcome) is Kill:
                record = set_record(entry, Status.KILLED, err=outcome.error)
            elif type(outcome) is Release:
                record = set_record(entry, Status.PENDING, a=max(0, entry.attempt - 1))
            else:
                raise TypeError(f"unknown outcome {outcome!r}")
            return [record], None

        _, mark = await self.journal.run(section)
        await self.journal.durable(mark)

    # --- TaskSink ---------------------------------------------------------------------

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        records = [_put(task) for task in tasks]
        journal = self.journal
        _, mark = await journal.run(lambda _: (records, None))
        await journal.durable(mark)
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
            stored = state.tasks.get(task.id)
            if stored is None:
                raise TaskNotFound(f"no task {task.id} to update in {self.path}")
            if task.status is not stored.status:
                stored.status.check(task.status)
            return [_put(task)], None

        _, mark = await self.journal.run(section)
        await self.journal.durable(mark)

    @hookimpl
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        def section(state: State) -> tuple[Records, None]:
            stored = state.tasks.get(task.id)
            if stored is None:
                raise TaskNotFound(f"no task {task.id} to reschedule in {self.path}")
            if task.lease_token is not None:
                check_lease(stored.task(), task)
            if stored.status is not Status.PENDING:
                stored.status.check(Status.PENDING)
            return [set_record(stored, Status.PENDING, at=to_us(run_at))], None

        _, mark = await self.journal.run(section)
        await self.journal.durable(mark)

    @hookimpl
    async def vacuum(self) -> int:
        journal = self.journal
        removed, _ = await journal.run(lambda _: ([], journal.compact(keep_final=False)))
        return removed

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        clock = self.clock

        def section(state: State) -> tuple[Records, bool]:
            stored = state.tasks.get(task_id)
            if stored is None or stored.status not in (
                Status.FAILED,
                Status.KILLED,
                Status.RUNNING,
            ):
                return [], False
            attempt = 0 if stored.status is Status.KILLED else stored.attempt
            return [set_record(stored, Status.PENDING, a=attempt, at=_now_us(clock))], True

        resumed, mark = await self.journal.run(section)
        await self.journal.durable(mark)
        return resumed

    @hookimpl
    async def resume_abandoned(self) -> int:
        clock = self.clock

        def section(state: State) -> tuple[Records, int]:
            records: Records = []
            for entry in list(state.expired(_now_us(clock))):
                error = (
                    f"worker {entry.lock_by!r} stopped renewing its lease (attempt {entry.attempt})"
                )
                status = Status.KILLED if entry.attempt >= entry.max_attempts else Status.PENDING
                records.append(set_record(entry, status, err=error))
            return records, len(records)

        count, mark = await self.journal.run(section)
        await self.journal.durable(mark)
        return count

    @hookimpl
    async def register_worker(self, worker: WorkerInfo) -> None:
        now = _now_us(self.clock)
        await self.journal.run(lambda _: ([worker_record(worker, now)], None))

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
        journal, loop = self.journal, asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        state = await self._read()
        pending = list(dict.fromkeys(task_ids))
        for tid in pending:
            if tid not in state.tasks:
                raise TaskNotFound(f"no task {tid} to wait for in {self.path}")
        while True:
            state = journal.state
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
                journal.final_waiters.setdefault(tid, []).append(waiter)
            wait = self.config.poll_interval
            try:
                await asyncio.wait_for(waiter, wait if remaining is None else min(wait, remaining))
            except TimeoutError:
                pass
            if journal.changed():
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
        return JsonBackend(attrs.evolve(self.config, queue=queue), self.journal)

    @hookimpl
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.journal.users -= 1
        if self.journal.users <= 0:
            await self.journal.close()

    def __repr__(self) -> str:
        return f"JsonBackend({self.path!r}, queue={self.config.queue!r})"
