"""The model's bookkeeping: what it believes about each task, and how it compares with the store.

``MachineBase`` holds the plumbing the rules in ``conveyor.testing.model`` share:
calling the backend on the test's event loop, the reset between examples, what
is ready, held or waiting, the order a claim must follow, and the invariants
that read the store back (fetch_by_id, listings, metrics).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import attrs
from hypothesis.stateful import Bundle, RuleBasedStateMachine

from conveyor.capability import Capability
from conveyor.context import WorkerInfo
from conveyor.expose import Filter
from conveyor.outcome import Kill, Outcome
from conveyor.status import Status
from conveyor.task import Task
from conveyor.task_id import TaskId
from conveyor.testing.support import HANG_GUARD, Suite, claim, worker

__all__ = ["C", "DRAIN_LIMIT", "MachineBase", "Model", "recorded"]

C = Capability
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DRAIN_LIMIT = 10_000
"""Claims the model makes to empty the queue before an example; more means poll never idles."""

TOLERANCE = 1e-3
"""Seconds two times may differ and still count as equal: stores may keep milliseconds."""


@attrs.define
class Model:
    """What the model believes about one task."""

    status: Status
    max_attempts: int
    priority: int
    run_at: float
    attempt: int = 0
    held: Task[bytes] | None = None  # the claim whose token is current
    deadline: float | None = None  # the held lease's deadline, as the store keeps it
    lease: float = 0.0  # how long the last claim's lease ran from its claim


def recorded(method: F) -> F:
    """Keep the first failure of a run: Hypothesis may replace it with a Flaky error.

    The backend lives across examples (one ``conveyor_backend`` per test), so a
    backend broken badly enough to defeat the reset between examples makes a
    replay behave differently; the first failure is the one worth reporting.
    """

    @functools.wraps(method)
    def run(self: MachineBase, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if not self.failures:
                self.failures.append(exc)
            raise

    return run  # type: ignore[return-value]


class MachineBase(RuleBasedStateMachine):
    """``suite`` and ``loop`` are bound per test by ``run_model``."""

    suite: ClassVar[Suite]
    loop: ClassVar[asyncio.AbstractEventLoop]
    failures: ClassVar[list[Exception]]

    stale = Bundle("stale")

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[TaskId, Model] = {}
        self.pushed = 0
        backend = self.suite.backend
        self.workers: list[WorkerInfo] = [worker(backend), worker(backend)]
        self._drain()

    # --- plumbing ---------------------------------------------------------------------

    def call(self, awaitable: Awaitable[T]) -> T:
        async def run() -> T:
            return await asyncio.wait_for(awaitable, HANG_GUARD)

        coroutine: Coroutine[Any, Any, T] = run()
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def has(self, *caps: Capability) -> bool:
        return self.suite.supports(*caps)

    def now(self) -> float:
        clock = self.suite.clock
        return clock.time() if clock is not None else time.time()

    def claim(self, who: int) -> Task[bytes] | None:
        return self.call(claim(self.suite.backend, self.workers[who]))

    @recorded
    def _drain(self) -> None:
        """Start from a queue with nothing ready and nothing held (earlier examples' leftovers)."""
        backend, clock = self.suite.backend, self.suite.clock
        if clock is not None:
            clock.advance(86_400 * 2)
            if self.has(C.RESUME_ABANDONED):
                self.call(backend.resume_abandoned())
        else:
            self._bring_forward()
        cleared = 0
        while (task := self.claim(0)) is not None:
            cleared += 1
            # bounded: a backend that hands out what it already handed out never runs dry
            assert cleared <= DRAIN_LIMIT, f"poll never reported idle after {DRAIN_LIMIT} claims"
            if self.has(C.ACK):
                self.call(backend.hooks.ack(task, Kill("conformance model: cleared")))
        if self.has(C.VACUUM):
            self.call(backend.vacuum())
        self.baseline = self._counts() if self.has(C.METRICS) else {}

    def _bring_forward(self) -> None:
        """Without a clock, make earlier examples' leftovers due now, so the drain clears them.

        Time cannot be moved, and the rules push delayed tasks (and retry) an hour
        ahead, so the tasks an example leaves waiting or held are neither ready nor
        expired when the next one starts; rescheduled by id, each is ``PENDING`` at
        now. Without list_tasks no listing is compared; without reschedule they stay.
        """
        if not self.has(C.LIST_TASKS, C.RESCHEDULE):
            return
        backend = self.suite.backend
        for status in (Status.PENDING, Status.FAILED, Status.RUNNING, Status.QUEUED):
            listing = backend.hooks.list_tasks(backend.queue, Filter(status=status, page_size=1000))
            for task in self.call(listing):
                self.call(backend.reschedule(task.id))

    # --- what the model believes ------------------------------------------------------

    def stored_run_at(self, task_id: TaskId, given: datetime | None) -> float:
        """The run_at the store keeps (read back when it can be), else the one given."""
        if self.has(C.FETCH_BY_ID):
            stored = self.call(self.suite.backend.fetch_by_id(task_id))
            assert stored is not None, f"task {task_id} vanished"
            return stored.run_at.timestamp()
        return given.timestamp() if given is not None else self.now()

    def stored_deadline(self, task_id: TaskId, model: Model) -> float | None:
        """A held task's lease deadline after a heartbeat (read back, else predicted)."""
        if self.has(C.FETCH_BY_ID):
            stored = self.call(self.suite.backend.fetch_by_id(task_id))
            assert stored is not None and stored.lease_until is not None, "a held lease vanished"
            assert model.deadline is None or stored.lease_until.timestamp() >= model.deadline, (
                "a heartbeat moved a lease deadline backwards"
            )
            return stored.lease_until.timestamp()
        return self.now() + model.lease

    def absorb_heartbeat_resume(self, task_id: TaskId) -> None:
        """A heartbeat may resume an expired lease itself; take the store's word for which."""
        model = self.tasks[task_id]
        stored = self.call(self.suite.backend.fetch_by_id(task_id))
        assert stored is not None
        if stored.status is Status.RUNNING:
            assert stored.lease_until is not None
            assert stored.lease_until.timestamp() <= self.now(), (
                "a heartbeat extended a lease that had already expired"
            )
            return
        want = Status.KILLED if model.attempt >= model.max_attempts else Status.PENDING
        assert stored.status is want, f"a heartbeat resumed an expired lease as {stored.status}"
        model.status, model.held, model.deadline = want, None, None

    def ready(self) -> list[tuple[TaskId, Model]]:
        now = self.now()
        return [
            (tid, m)
            for tid, m in self.tasks.items()
            if m.status.is_ready_state and m.run_at <= now + TOLERANCE
        ]

    def running(self) -> list[TaskId]:
        return sorted(tid for tid, m in self.tasks.items() if m.status is Status.RUNNING)

    def waiting(self) -> list[TaskId]:
        return sorted(tid for tid, m in self.tasks.items() if m.status.is_ready_state)

    def waiting_or_held(self) -> list[TaskId]:
        return sorted(set(self.waiting()) | set(self.running()))

    def finished(self) -> list[TaskId]:
        return sorted(tid for tid, m in self.tasks.items() if m.status.is_final)

    def expired(self, task_id: TaskId, now: float) -> bool:
        deadline = self.tasks[task_id].deadline
        return deadline is not None and deadline <= now

    def ack(self, task_id: TaskId, outcome: Outcome) -> Model:
        model = self.tasks[task_id]
        assert model.held is not None
        self.call(self.suite.backend.hooks.ack(model.held, outcome))
        model.held = model.deadline = None
        return model

    def check_order(self, task_id: TaskId, ready: list[tuple[TaskId, Model]]) -> None:
        """The claim must be the first of ``ready`` by (priority, run_at, id)."""
        best_id, best = min(ready, key=lambda item: (-item[1].priority, item[1].run_at, item[0]))
        if task_id == best_id:
            return
        got = self.tasks[task_id]
        assert got.priority == best.priority, (
            f"priority {got.priority} delivered before {best.priority}"
        )
        assert abs(got.run_at - best.run_at) <= TOLERANCE, (
            f"within a priority the earliest run_at comes first: {task_id} (run_at"
            f" {got.run_at:.3f}) was delivered before {best_id} (run_at {best.run_at:.3f})"
        )

    # --- invariants -----------------------------------------------------------------

    def check_stored(self) -> None:
        if not self.has(C.FETCH_BY_ID):
            return
        for task_id, model in self.tasks.items():
            stored = self.call(self.suite.backend.fetch_by_id(task_id))
            assert stored is not None, f"task {task_id} ({model.status.value}) was lost"
            assert stored.status is model.status, (
                f"task {task_id} is {stored.status.value}, the model says {model.status.value}"
            )
            assert stored.attempt == model.attempt, (
                f"task {task_id} attempt {stored.attempt}, the model says {model.attempt}"
            )
            assert stored.attempt <= stored.max_attempts == model.max_attempts
            assert stored.priority == model.priority, f"task {task_id} lost its priority"
            if model.status is Status.DONE:
                assert stored.result == str(task_id), "a DONE task lost its result"
            if model.status is not Status.RUNNING:
                assert stored.lease_token is None, f"a {model.status.value} task kept a lease"

    def _counts(self) -> dict[str, int]:
        from conveyor.testing.suite_expose import counts

        return counts(self.call(self.suite.backend.metrics(self.suite.backend.queue)))

    def check_listings(self) -> None:
        by_status = {s: sum(1 for m in self.tasks.values() if m.status is s) for s in Status}
        if self.has(C.LIST_TASKS):
            for status in (Status.PENDING, Status.RUNNING, Status.FAILED):
                page = self.call(
                    self.suite.backend.hooks.list_tasks(
                        self.suite.backend.queue, Filter(status=status, page_size=1000)
                    )
                )
                listed = {t.id for t in page}
                expected = {t for t, m in self.tasks.items() if m.status is status}
                assert listed == expected, (
                    f"list_tasks(status={status.value}) shows {len(listed)} task(s),"
                    f" the model holds {len(expected)} ({len(listed ^ expected)} differ)"
                )
        if self.has(C.METRICS) and self.baseline:
            now = self._counts()
            for status in (Status.PENDING, Status.RUNNING, Status.FAILED):
                title = f"{status.value.upper()}_JOBS"
                if title in now:
                    grew = now[title] - self.baseline.get(title, 0)
                    assert grew == by_status[status], (
                        f"metrics {title} is {grew} above the example's start,"
                        f" the model holds {by_status[status]}"
                    )
