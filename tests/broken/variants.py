"""Deliberately broken variants of the memory backend: each gets one promise wrong.

``tests/test_suite_catches.py`` runs the conformance suite against each and
asserts that it fails, and that the intact backend passes the same harness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import attrs
from conveyor_memory import MemoryBackend

from conveyor import (
    Filter,
    Status,
    Task,
    TaskId,
    TaskResult,
    WorkerInfo,
    hookimpl,
)
from conveyor.outcome import Outcome

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LosesOnClaim(MemoryBackend):
    """Every claim silently drops the next ready task."""

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        async for task in super().poll(worker):
            if task is not None:
                lost = self.store.take(self.config.queue)
                if lost is not None:
                    del self.store.tasks[lost.id]
            yield task


class DeliversEarly(MemoryBackend):
    """Queues every push as ready now, whatever its run_at."""

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        for task in tasks:
            self.store.tasks[task.id] = task
            self.store.enqueue(attrs.evolve(task, run_at=_EPOCH))
        return [task.id for task in tasks]


class IgnoresPriority(MemoryBackend):
    """Queues every push as priority 0: plain FIFO."""

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        for task in tasks:
            self.store.tasks[task.id] = task
            self.store.enqueue(attrs.evolve(task, priority=0))
        return [task.id for task in tasks]


class AcceptsStaleToken(MemoryBackend):
    """Acks whatever token the caller carries while the task is held."""

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        stored = self.store.tasks.get(task.id)
        if stored is not None and stored.status is Status.RUNNING:
            task = attrs.evolve(task, lease_token=stored.lease_token)
        await super().ack(task, outcome)


class DoubleDelivers(MemoryBackend):
    """Leaves a claimed task in the ready queue, so the next claim gets it again."""

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        async for task in super().poll(worker):
            if task is not None:
                self.store.enqueue(attrs.evolve(task, status=Status.PENDING))
            yield task


class MiscountsVacuum(MemoryBackend):
    """Deletes finished tasks but counts only the DONE ones."""

    @hookimpl
    async def vacuum(self) -> int:
        done = sum(1 for t in self.store.tasks.values() if t.status is Status.DONE)
        await super().vacuum()
        return done


class IgnoresPage(MemoryBackend):
    """Always lists the first page."""

    @hookimpl
    async def list_tasks(self, queue: str, filter: Filter) -> Sequence[Task[bytes]]:
        return await super().list_tasks(queue, attrs.evolve(filter, page=1))

    @hookimpl
    async def list_all_tasks(self, filter: Filter) -> Sequence[Task[bytes]]:
        return await super().list_all_tasks(attrs.evolve(filter, page=1))


class ResumesUncounted(MemoryBackend):
    """Puts abandoned tasks back as if the lost attempt never happened."""

    @hookimpl
    async def resume_abandoned(self) -> int:
        held = {tid for ids in self.store.held.values() for tid in ids}
        count = await super().resume_abandoned()
        for tid in held:
            task = self.store.tasks.get(tid)
            if task is not None and task.status is Status.PENDING and task.attempt > 0:
                self.store.tasks[tid] = attrs.evolve(task, attempt=task.attempt - 1)
        return count


class ReportsTwice(MemoryBackend):
    """check_status reports each finished task twice."""

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        once = await super().check_status(task_ids)
        return [*once, *once]


class LosesResults(MemoryBackend):
    """Marks a task DONE but drops its result."""

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        await super().ack(task, outcome)
        stored = self.store.tasks.get(task.id)
        if stored is not None and stored.status is Status.DONE:
            self.store.tasks[task.id] = attrs.evolve(stored, result=None)


class LeaksQueues(MemoryBackend):
    """make_shared backends poll every queue of the store."""

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        async for task in super().poll(worker):
            if task is None:
                for name in list(self.store.queues):
                    other = self.store.take(name)
                    if other is not None:
                        task = attrs.evolve(other, status=Status.RUNNING, attempt=other.attempt + 1)
                        self.store.tasks[other.id] = task
                        break
            yield task

    @hookimpl
    def make_shared(self, queue: str) -> object:
        return LeaksQueues(attrs.evolve(self.config, queue=queue), self.store)


class ClaimsWhatItLacks(MemoryBackend):
    """Implements the push_weak hook only to raise: a capability claimed but not had."""

    @hookimpl
    async def push_weak(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        raise NotImplementedError("push_weak")


VARIANTS: dict[str, type[MemoryBackend]] = {
    cls.__name__: cls
    for cls in (
        LosesOnClaim,
        DeliversEarly,
        IgnoresPriority,
        AcceptsStaleToken,
        DoubleDelivers,
        MiscountsVacuum,
        IgnoresPage,
        ResumesUncounted,
        ReportsTwice,
        LosesResults,
        LeaksQueues,
        ClaimsWhatItLacks,
    )
}
"""Every broken variant by name."""

INTACT: type[MemoryBackend] = MemoryBackend
