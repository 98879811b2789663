"""An independent backend, written from docs/plugin-authors.md and the hookspecs alone.

It exists to measure the conformance suite: ``tests/broken/seeded.py`` seeds
small realistic bugs into it (each one a ``bug`` name this code checks at the
one place the bug lives), and ``tests/broken/measure.py`` counts how many of
them the suite catches. With ``bug=""`` it is a correct backend and must pass.

It keeps everything in one in-process store (a dict of tasks, a push sequence
for FIFO) shared by ``make_shared`` backends; no code is taken from the memory
plugin.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
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
from conveyor.expose import status_statistics
from conveyor.lease import check_lease, new_token
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.rules import BackendConfig, seconds
from conveyor.status import InvalidTransition

__all__ = ["IndieBackend", "IndieConfig", "IndieStore"]

_FINAL = (Status.DONE, Status.KILLED)
_HELD = (Status.RUNNING, Status.QUEUED)


@attrs.frozen(kw_only=True)
class IndieConfig(BackendConfig):
    """``bug`` names the seeded bug to switch on ("" for none).

    A ``BackendConfig`` as docs/plugin-authors.md asks: the facade reads the clock
    from it only then, and stamps pushes on that clock, so "now" is one instant
    to the facade and to this store (queue, lease_seconds, clock come from it).
    """

    idle_wait: float = attrs.field(default=0.05, validator=seconds())
    bug: str = ""


class IndieStore:
    """Tasks, their push sequence, registered workers, and a condition for waiters."""

    def __init__(self) -> None:
        self.tasks: dict[TaskId, Task[bytes]] = {}
        self.seq: dict[TaskId, int] = {}
        self.counter = itertools.count()
        self.workers: dict[str, tuple[WorkerInfo, datetime]] = {}
        self.changed = asyncio.Event()
        self.users = 0

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class IndieBackend:
    """One queue over an ``IndieStore``."""

    Config = IndieConfig

    def __init__(self, config: IndieConfig, store: IndieStore | None = None) -> None:
        self.config = config
        self.store = store or IndieStore()
        self.store.users += 1

    def bug(self, name: str) -> bool:
        return self.config.bug == name

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.config.clock.time(), UTC)

    # --- claiming ---------------------------------------------------------------

    def _ready(self) -> list[Task[bytes]]:
        now = self.now()
        ready = [
            t
            for t in self.store.tasks.values()
            if t.queue == self.config.queue
            and (
                t.status in (Status.PENDING, Status.FAILED)
                or (
                    self.bug("expired_handed_out")
                    and t.status is Status.RUNNING
                    and t.lease_until is not None
                    and t.lease_until <= now
                )
            )
            and (t.run_at < now if self.bug("due_strict") else t.run_at <= now)
        ]
        if self.bug("order_ignores_run_at"):
            ready.sort(key=lambda t: (-t.priority, t.id))
        else:
            ready.sort(key=lambda t: (-t.priority, t.run_at, self.store.seq[t.id]))
        return ready

    def _claim(self, task: Task[bytes], worker: WorkerInfo) -> Task[bytes]:
        until = self.now() + timedelta(seconds=self.config.lease_seconds)
        claimed = attrs.evolve(
            task,
            status=Status.RUNNING,
            attempt=task.attempt + 1,
            lock_by=worker.name,
            lease_token=new_token(),
            lease_until=until,
        )
        self.store.tasks[task.id] = claimed
        return claimed

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        idle = False
        snapshot = self._ready() if self.bug("poll_snapshot") else None
        buffered: list[Task[bytes]] = []
        while True:
            if buffered:
                yield buffered.pop(0)
                continue
            ready = snapshot if snapshot is not None else self._ready()
            if snapshot is not None:  # the bug: what was ready when the stream opened, only
                tasks = self.store.tasks
                ready = [
                    tasks[t.id]
                    for t in ready
                    if t.id in tasks and tasks[t.id].status in (Status.PENDING, Status.FAILED)
                ]
            if ready:
                idle = False
                task = ready[0]
                if self.bug("claim_race"):
                    await asyncio.sleep(0)  # "let others run" between the read and the write
                claimed = self._claim(task, worker)
                if self.bug("poll_prefetch") and len(ready) > 1:
                    buffered.append(self._claim(ready[1], worker))
                yield claimed
                continue
            if idle and not self.bug("poll_spins"):
                changed = self.store.changed
                try:
                    await asyncio.wait_for(changed.wait(), self.config.idle_wait)
                except TimeoutError:
                    pass
            idle = True
            yield None

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        now = self.now()
        until = now + timedelta(seconds=self.config.lease_seconds)
        for task in list(self.store.tasks.values()):
            if task.status is not Status.RUNNING or task.lease_until is None:
                continue
            if task.lock_by != worker.name and not self.bug("heartbeat_all_workers"):
                continue
            if task.lease_until <= now and not self.bug("heartbeat_revives_expired"):
                continue
            self.store.tasks[task.id] = attrs.evolve(task, lease_until=until)
        if worker.name in self.store.workers:
            info, _ = self.store.workers[worker.name]
            self.store.workers[worker.name] = (info, now)

    @hookimpl
    async def close(self) -> None:
        return None

    # --- ack ------------------------------------------------------------------------

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        stored = self.store.tasks.get(task.id)
        if stored is None:
            if self.bug("ack_vacuumed_not_found"):
                raise TaskNotFound(f"no task {task.id}")
            raise StaleLease(f"task {task.id} no longer exists")
        check_lease(stored, task)
        late = stored.lease_until is not None and stored.lease_until <= self.now()
        if self.bug("ack_refused_after_expiry") and late:
            raise StaleLease(f"the lease of {task.id} expired")
        clear: dict[str, Any] = {"lock_by": None, "lease_token": None, "lease_until": None}
        if self.bug("retry_keeps_lease") and isinstance(outcome, Retry):
            clear = {}
        if isinstance(outcome, Done):
            new = attrs.evolve(stored, status=Status.DONE, result=outcome.result, **clear)
        elif isinstance(outcome, Retry):
            spent = (
                stored.attempt > stored.max_attempts
                if self.bug("retry_off_by_one")
                else stored.attempt >= stored.max_attempts
            )
            if spent:
                new = attrs.evolve(stored, status=Status.KILLED, last_error=outcome.error, **clear)
            else:
                new = attrs.evolve(
                    stored,
                    status=Status.FAILED,
                    last_error=outcome.error,
                    run_at=outcome.run_at,
                    **clear,
                )
        elif isinstance(outcome, Kill):
            error = None if self.bug("kill_drops_error") else outcome.error
            new = attrs.evolve(stored, status=Status.KILLED, last_error=error, **clear)
        elif isinstance(outcome, Release):
            attempt = stored.attempt if self.bug("release_counts_attempt") else stored.attempt - 1
            run_at = self.now() if self.bug("release_to_back") else stored.run_at
            if self.bug("release_to_back"):
                self.store.seq[stored.id] = next(self.store.counter)
            new = attrs.evolve(
                stored, status=Status.PENDING, attempt=attempt, run_at=run_at, **clear
            )
        else:
            raise TypeError(f"unknown outcome {outcome!r}")
        self.store.tasks[task.id] = new
        self.store.touch()

    @hookimpl
    async def resume_abandoned(self) -> int:
        now = self.now()
        count = 0
        for task in list(self.store.tasks.values()):
            if task.status is not Status.RUNNING or task.lease_until is None:
                continue
            expired = (
                now > task.lease_until if self.bug("expiry_strict") else now >= task.lease_until
            )
            if not expired:
                continue
            error = f"worker {task.lock_by} was lost (lease expired)"
            clear: dict[str, Any] = {"lock_by": None, "lease_token": None, "lease_until": None}
            status = Status.KILLED if task.attempt >= task.max_attempts else Status.PENDING
            self.store.tasks[task.id] = attrs.evolve(task, status=status, last_error=error, **clear)
            count += 1
        if count:
            self.store.touch()
        return count

    # --- sink -----------------------------------------------------------------------

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        for task in tasks:
            if self.bug("push_drops_name"):
                task = attrs.evolve(task, name=None)
            self.store.tasks[task.id] = task
            self.store.seq[task.id] = next(self.store.counter)
        self.store.touch()
        return [t.id for t in tasks]

    @hookimpl
    async def push_weak(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.push(tasks)

    # --- management -------------------------------------------------------------

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        task = self.store.tasks.get(task_id)
        if task is not None and task.status is Status.KILLED and self.bug("fetch_misses_killed"):
            return None
        return task

    @hookimpl
    async def update(self, task: Task[bytes]) -> None:
        stored = self.store.tasks.get(task.id)
        if stored is None:
            raise TaskNotFound(f"no task {task.id} to update")
        if task.status is not stored.status:
            held = Status.RUNNING in (task.status, stored.status) or Status.QUEUED in (
                task.status,
                stored.status,
            )
            if held and not self.bug("update_enters_running"):
                raise InvalidTransition(stored.status, task.status)
            stored.status.check(task.status)
        if task.max_attempts < max(1, stored.attempt) and not self.bug("update_below_attempt"):
            raise ValueError(f"max_attempts {task.max_attempts} is below attempt {stored.attempt}")
        keep: dict[str, Any] = {
            "queue": stored.queue,
            "attempt": stored.attempt,
            "lock_by": stored.lock_by,
            "lease_token": stored.lease_token,
            "lease_until": stored.lease_until,
        }
        if self.bug("update_moves_queue"):
            del keep["queue"]
        if self.bug("update_takes_lease"):
            for key in ("lock_by", "lease_token", "lease_until"):
                del keep[key]
        self.store.tasks[task.id] = attrs.evolve(task, **keep)
        self.store.touch()

    @hookimpl
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        stored = self.store.tasks.get(task.id)
        if stored is None:
            raise TaskNotFound(f"no task {task.id} to reschedule")
        if stored.status in _FINAL and not self.bug("reschedule_finished"):
            raise InvalidTransition(stored.status, Status.PENDING)
        if task.lease_token is not None:
            check_lease(stored, task)
        attempt = stored.attempt
        if stored.status in _HELD and not self.bug("reschedule_keeps_attempt"):
            attempt -= 1
        self.store.tasks[task.id] = attrs.evolve(
            stored,
            status=Status.PENDING,
            attempt=attempt,
            run_at=run_at,
            lock_by=None,
            lease_token=None,
            lease_until=None,
        )
        self.store.touch()

    @hookimpl
    async def vacuum(self) -> int:
        gone = [t.id for t in self.store.tasks.values() if t.status in _FINAL]
        for task_id in gone:
            del self.store.tasks[task_id]
            self.store.seq.pop(task_id, None)
        return len(gone)

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        stored = self.store.tasks.get(task_id)
        if stored is None or stored.status not in (Status.FAILED, Status.KILLED, *_HELD):
            return False
        if stored.status is Status.KILLED:
            attempt = stored.attempt if self.bug("resume_killed_keeps_attempt") else 0
        elif stored.status in _HELD:
            attempt = stored.attempt - 1
        else:
            attempt = stored.attempt
        self.store.seq[task_id] = next(self.store.counter)
        self.store.tasks[task_id] = attrs.evolve(
            stored,
            status=Status.PENDING,
            attempt=attempt,
            run_at=self.now(),
            lock_by=None,
            lease_token=None,
            lease_until=None,
        )
        self.store.touch()
        return True

    @hookimpl
    async def register_worker(self, worker: WorkerInfo) -> None:
        self.store.workers[worker.name] = (worker, self.now())

    # --- expose ---------------------------------------------------------------------

    def _page(self, tasks: list[Task[bytes]], filter: Filter) -> list[Task[bytes]]:
        if filter.status is not None:
            tasks = [t for t in tasks if t.status is filter.status]
        if filter.name is not None and not self.bug("name_filter_ignored"):
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
        if not self.bug("queues_omit_worker_only"):
            names |= {info.queue for info, _ in self.store.workers.values()}
        return [
            QueueInfo(
                name,
                list(await self.metrics(name)),
                [w for w, (info, _) in self.store.workers.items() if info.queue == name],
            )
            for name in sorted(names)
        ]

    @hookimpl
    async def list_workers(self, queue: str | None) -> Sequence[RunningWorker]:
        return [
            RunningWorker(name, info.queue, "indie", info.started_at, seen, info.layers)
            for name, (info, seen) in sorted(self.store.workers.items())
            if queue is None or info.queue == queue
        ]

    @hookimpl
    async def metrics(self, queue: str | None) -> Sequence[Statistic]:
        counts = dict.fromkeys(Status, 0)
        for task in self.store.tasks.values():
            if queue is None or task.queue == queue or self.bug("metrics_ignore_queue"):
                counts[task.status] += 1
        return status_statistics(counts)

    # --- wait for completion -------------------------------------------------------

    def _finished(self, task: Task[bytes]) -> bool:
        if self.bug("check_status_reports_failed"):
            return task.status in (*_FINAL, Status.FAILED)
        return task.status in _FINAL

    def _result(self, task: Task[bytes]) -> TaskResult[bytes]:
        error = task.last_error if task.status is Status.KILLED else None
        return TaskResult(task.id, task.status, task.result, error)

    @hookimpl
    async def wait_for(
        self, task_ids: Sequence[TaskId], timeout: float | None
    ) -> AsyncIterator[TaskResult[bytes]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        left = list(dict.fromkeys(task_ids))
        for task_id in left:
            if task_id not in self.store.tasks:
                raise TaskNotFound(f"no task {task_id} to wait for")
        while left:
            for task_id in list(left):
                task = self.store.tasks.get(task_id)
                if task is not None and task.status in _FINAL:
                    left.remove(task_id)
                    yield self._result(task)
            if not left:
                return
            wait = 1.0 if deadline is None else deadline - loop.time()
            if wait <= 0:
                raise TimeoutError(f"{len(left)} task(s) unfinished after {timeout} s")
            try:
                await asyncio.wait_for(self.store.changed.wait(), min(wait, 1.0))
            except TimeoutError:
                pass

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        found = (self.store.tasks.get(t) for t in dict.fromkeys(task_ids))
        return [self._result(t) for t in found if t is not None and self._finished(t)]

    # --- config, shared ---------------------------------------------------------------

    @hookimpl
    def get_queue(self) -> str:
        return self.config.queue

    @hookimpl
    def make_shared(self, queue: str) -> object:
        return IndieBackend(attrs.evolve(self.config, queue=queue), self.store)
