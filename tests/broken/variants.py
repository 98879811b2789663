"""Deliberately broken backends: each gets one promise wrong.

The first twelve are variants of the memory backend. The rest, one per
guarantee the suite's promise maps added, are the independent backend
(``indie.py``) with one bug switched on (``SeededVariant``). ``tests/test_suite_catches.py``
runs the conformance suite against each and asserts that it fails, and that
both intact backends pass the same harness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import attrs
from conveyor_memory import MemoryBackend
from indie import IndieBackend, IndieConfig

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
        stored = self.store.get(task.id)
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
        done = sum(1 for _, status in self.store.states() if status is Status.DONE)
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
            task = self.store.get(tid)
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
        stored = self.store.get(task.id)
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


class SeededVariant(IndieBackend):
    """The independent backend with the bug ``BUG`` switched on."""

    BUG: str = ""

    def __init__(self, config: IndieConfig, store: object | None = None) -> None:
        super().__init__(attrs.evolve(config, bug=self.BUG), store)  # type: ignore[arg-type]


def _seeded(name: str, bug: str, doc: str) -> type[SeededVariant]:
    return type(name, (SeededVariant,), {"BUG": bug, "__doc__": doc})


# One per guarantee the promise maps added: (variant, indie bug, the suite class that holds it).
SEEDED: dict[str, tuple[str, str]] = {
    "SpinsWhenIdle": ("poll_spins", "TestBackend"),
    "ClaimsAhead": ("poll_prefetch", "TestBackend"),
    "ReadyOnlyAfterRunAt": ("due_strict", "TestBackend"),
    "HandsOutExpiredLeases": ("expired_handed_out", "TestBackend"),
    "StreamSnapshot": ("poll_snapshot", "TestWorkerUse"),
    "RacesConcurrentClaims": ("claim_race", "TestWorkerUse"),
    "HeartbeatsEveryone": ("heartbeat_all_workers", "TestResumeAbandoned"),
    "HeartbeatRevives": ("heartbeat_revives_expired", "TestResumeAbandoned"),
    "RefusesLateAck": ("ack_refused_after_expiry", "TestResumeAbandoned"),
    "ExpiresLate": ("expiry_strict", "TestResumeAbandoned"),
    "VacuumedAckNotFound": ("ack_vacuumed_not_found", "TestAck"),
    "RetryKeepsLease": ("retry_keeps_lease", "TestAck"),
    "ReleaseToBack": ("release_to_back", "TestOrder"),
    "OrdersById": ("order_ignores_run_at", "TestOrder"),
    "UpdateMovesQueue": ("update_moves_queue", "TestUpdate"),
    "UpdateForgesLease": ("update_takes_lease", "TestUpdate"),
    "UpdateEntersRunning": ("update_enters_running", "TestUpdate"),
    "UpdateBelowAttempt": ("update_below_attempt", "TestUpdate"),
    "RescheduleKeepsAttempt": ("reschedule_keeps_attempt", "TestReschedule"),
    "ReschedulesFinished": ("reschedule_finished", "TestReschedule"),
    "DropsName": ("push_drops_name", "TestPush"),
    "IgnoresNameFilter": ("name_filter_ignored", "TestListTasks"),
    "OmitsWorkerQueues": ("queues_omit_worker_only", "TestListQueues"),
    "MetricsIgnoreQueue": ("metrics_ignore_queue", "TestMetrics"),
    "ReportsFailedAsFinished": ("check_status_reports_failed", "TestCheckStatus"),
}

VARIANTS: dict[str, type[MemoryBackend] | type[SeededVariant]] = {
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
} | {name: _seeded(name, bug, f"indie with bug {bug!r}") for name, (bug, _) in SEEDED.items()}
"""Every broken variant by name."""

INTACT: type[MemoryBackend] = MemoryBackend
INTACT_INDIE: type[IndieBackend] = IndieBackend
