"""A stateful model of a queue (Hypothesis ``RuleBasedStateMachine``) run against a backend.

Rules push, claim, ack (done, retry, kill, release), move time, expire leases and
resume abandoned tasks, reschedule, resume by id, vacuum, and replay stale
tokens. After every step the backend must agree with the model: nothing
acknowledged is lost, nothing delivered that was not pushed, each task in
exactly one state, attempts never above ``max_attempts``, no delivery before
``run_at``, priority order and FIFO within a priority, stale tokens refused.

Hypothesis drives the machine synchronously in a thread; each backend call is
sent to the test's event loop, where the backend lives.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor.capability import Capability
from conveyor.errors import StaleLease
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.status import Status
from conveyor.task import Task
from conveyor.task_id import TaskId
from conveyor.testing.base import SuiteTests, need
from conveyor.testing.support import HANG_GUARD, Suite, claim, worker

__all__ = ["QueueMachine", "TestModel", "EXAMPLES_ENV", "run_model"]

EXAMPLES_ENV = "CONVEYOR_MODEL_EXAMPLES"
"""Environment variable: how many examples the model runs (default 20; ``make soak`` more)."""

DRAIN_LIMIT = 10_000
"""Claims the model makes to empty the queue before an example; more means poll never idles."""

T = TypeVar("T")
C = Capability


@attrs.define
class Model:
    """What the model believes about one task."""

    status: Status
    max_attempts: int
    priority: int
    run_at: float
    seq: int | None  # push order; None once the task has been claimed (FIFO no longer defined)
    attempt: int = 0
    held: Task[bytes] | None = None  # the claim whose token is current
    result: bytes | None = None


F = TypeVar("F", bound=Callable[..., Any])


def _recorded(method: F) -> F:
    """Keep the first failure of a run: Hypothesis may replace it with a Flaky error.

    The backend lives across examples (one ``conveyor_backend`` per test), so a
    backend broken badly enough to defeat the reset between examples makes a
    replay behave differently; the first failure is the one worth reporting.
    """

    @functools.wraps(method)
    def run(self: QueueMachine, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if not self.failures:
                self.failures.append(exc)
            raise

    return run  # type: ignore[return-value]


class QueueMachine(RuleBasedStateMachine):
    """The model; ``suite`` and ``loop`` are bound per test by ``run_model``."""

    suite: ClassVar[Suite]
    loop: ClassVar[asyncio.AbstractEventLoop]
    failures: ClassVar[list[Exception]]

    stale = Bundle("stale")

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[TaskId, Model] = {}
        self.pushed = 0
        self.worker = worker(self.suite.backend)
        self._drain()

    # --- plumbing -------------------------------------------------------------------

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

    @_recorded
    def _drain(self) -> None:
        """Start from a queue with nothing ready and nothing held (earlier examples' leftovers)."""
        backend, clock = self.suite.backend, self.suite.clock
        if clock is not None:
            clock.advance(86_400 * 2)
            if self.has(C.RESUME_ABANDONED):
                self.call(backend.resume_abandoned())
        cleared = 0
        while (task := self.call(claim(backend, self.worker))) is not None:
            cleared += 1
            # bounded: a backend that hands out what it already handed out never runs dry
            assert cleared <= DRAIN_LIMIT, f"poll never reported idle after {DRAIN_LIMIT} claims"
            if self.has(C.ACK):
                self.call(backend.hooks.ack(task, Kill("conformance model: cleared")))
        if self.has(C.VACUUM):
            self.call(backend.vacuum())

    def ready(self) -> list[tuple[TaskId, Model]]:
        now = self.now()
        return [
            (tid, m) for tid, m in self.tasks.items() if m.status.is_ready_state and m.run_at <= now
        ]

    def running(self) -> list[TaskId]:
        return sorted(tid for tid, m in self.tasks.items() if m.status is Status.RUNNING)

    # --- rules --------------------------------------------------------------------------

    @rule(
        priority=st.sampled_from([-1, 0, 0, 2]),
        delay=st.sampled_from([None, None, 10.5, 45.25]),
        max_attempts=st.integers(1, 3),
    )
    @_recorded
    def push(self, priority: int, delay: float | None, max_attempts: int) -> None:
        if delay is not None and self.suite.clock is None:
            delay = 3600.0  # without a clock a delayed task simply never comes due here
        run_at = None if delay is None else self.suite.later(delay)
        task_id = self.call(
            self.suite.backend.push(
                self.pushed, run_at=run_at, priority=priority, max_attempts=max_attempts
            )
        )
        assert task_id not in self.tasks, "push returned an id it had returned before"
        # FIFO is checked among tasks ready at once: stores may order due tasks by run_at
        when, seq = (self.now() - 1, self.pushed) if run_at is None else (run_at.timestamp(), None)
        self.tasks[task_id] = Model(Status.PENDING, max_attempts, priority, when, seq)
        self.pushed += 1

    @rule(target=stale)
    @_recorded
    def take(self) -> Task[bytes] | None:
        task = self.call(claim(self.suite.backend, self.worker))
        ready = self.ready()
        if task is None:
            assert not ready, f"poll reported nothing ready while {len(ready)} task(s) were ready"
            return None
        model = self.tasks.get(task.id)
        assert model is not None, f"poll delivered {task.id}, which was never pushed (or vacuumed)"
        assert model.status.is_ready_state, f"poll delivered a {model.status.value} task"
        assert model.run_at <= self.now(), "poll delivered a task before its run_at"
        top = max(m.priority for _, m in ready)
        assert model.priority == top, f"priority {model.priority} delivered before {top}"
        if model.seq is not None:
            fresh = [m.seq for _, m in ready if m.priority == top and m.seq is not None]
            assert model.seq == min(fresh), "tasks of one priority were not delivered FIFO"
        assert task.attempt == model.attempt + 1, f"attempt {task.attempt}, expected +1"
        assert task.attempt <= task.max_attempts, "a task was delivered past max_attempts"
        assert task.status is Status.RUNNING and task.lease_token
        previous = model.held
        model.status, model.attempt, model.held, model.seq = (
            Status.RUNNING,
            task.attempt,
            task,
            None,
        )
        if not self.has(C.ACK):
            del self.tasks[task.id]  # at-most-once: a claim removes the task
        return previous or task

    def _ack(self, task_id: TaskId, outcome: Outcome) -> Model:
        model = self.tasks[task_id]
        assert model.held is not None
        self.call(self.suite.backend.hooks.ack(model.held, outcome))
        model.held = None
        return model

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data())
    @_recorded
    def ack_done(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        model = self._ack(task_id, Done(self.suite.backend.codec.encode(str(task_id))))
        model.status = Status.DONE

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data(), delay=st.sampled_from([0.0, 20.0]))
    @_recorded
    def ack_retry(self, data: st.DataObject, delay: float) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        if self.suite.clock is None and delay:
            delay = 3600.0
        model = self._ack(task_id, Retry(self.suite.later(delay), "model retry"))
        if model.attempt >= model.max_attempts:
            model.status = Status.KILLED
        else:
            model.status = Status.FAILED
            model.run_at = self.suite.later(delay).timestamp()

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data())
    @_recorded
    def ack_kill(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        self._ack(task_id, Kill("model kill")).status = Status.KILLED

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data())
    @_recorded
    def release(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        model = self._ack(task_id, Release())
        model.status, model.attempt, model.run_at = Status.PENDING, model.attempt - 1, self.now()

    @precondition(lambda self: self.has(C.ACK))
    @rule(old=consumes(stale))
    @_recorded
    def stale_token_is_refused(self, old: Task[bytes] | None) -> None:
        if old is None:
            return
        model = self.tasks.get(old.id)
        if (
            model is not None
            and model.held is not None
            and model.held.lease_token == old.lease_token
        ):
            return  # still the current claim: not stale
        try:
            self.call(self.suite.backend.hooks.ack(old, Done()))
        except StaleLease:
            return
        raise AssertionError(f"an ack under the stale token of task {old.id} was accepted")

    @precondition(lambda self: self.suite.clock is not None)
    @rule(seconds=st.sampled_from([4.25, 17.75, 51.5]))  # never summing to a deadline exactly
    @_recorded
    def advance(self, seconds: float) -> None:
        assert self.suite.clock is not None
        self.suite.clock.advance(seconds)

    @precondition(lambda self: self.suite.clock is not None and self.running())
    @rule()
    @_recorded
    def expire_leases(self) -> None:
        assert self.suite.clock is not None
        deadlines = [self.tasks[t].held for t in self.running()]
        latest = max(t.lease_until for t in deadlines if t is not None and t.lease_until)
        self.suite.clock.set(max(self.suite.clock.time(), latest.timestamp() + 1))

    @precondition(lambda self: self.has(C.RESUME_ABANDONED, C.ACK))
    @rule()
    @_recorded
    def resume_abandoned(self) -> None:
        now = self.now()
        expired = []
        for task_id in self.running():
            held = self.tasks[task_id].held
            if held is not None and held.lease_until and held.lease_until.timestamp() <= now:
                expired.append(task_id)
        count = self.call(self.suite.backend.resume_abandoned())
        assert count == len(expired), f"resume_abandoned touched {count}, expected {len(expired)}"
        for task_id in expired:
            model = self.tasks[task_id]
            model.held = None
            model.status = Status.KILLED if model.attempt >= model.max_attempts else Status.PENDING

    @precondition(lambda self: self.has(C.RESCHEDULE, C.ACK) and self.running())
    @rule(data=st.data(), delay=st.sampled_from([0.0, 30.0]))
    @_recorded
    def reschedule(self, data: st.DataObject, delay: float) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        model = self.tasks[task_id]
        assert model.held is not None
        if model.attempt >= model.max_attempts:
            return  # as for resume_by_id: the contract leaves a rescheduled last attempt open
        when = self.suite.later(delay if self.suite.clock is not None or not delay else 3600)
        self.call(self.suite.backend.reschedule(model.held, run_at=when))
        model.held, model.status, model.run_at = None, Status.PENDING, when.timestamp()

    @precondition(lambda self: self.has(C.RESUME_BY_ID, C.ACK) and self.tasks)
    @rule(data=st.data())
    @_recorded
    def resume_by_id(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.tasks)))
        model = self.tasks[task_id]
        if model.status is Status.RUNNING and model.attempt >= model.max_attempts:
            # The contract keeps a resumed running task's attempts, so its next claim would
            # pass max_attempts; hookspecs leave that case open, the model does not probe it.
            return
        expected = model.status in (Status.FAILED, Status.KILLED, Status.RUNNING)
        assert self.call(self.suite.backend.resume_by_id(task_id)) is expected
        if expected:
            if model.status is Status.KILLED:
                model.attempt = 0
            model.status, model.held, model.run_at = Status.PENDING, None, self.now()

    @precondition(lambda self: self.has(C.VACUUM))
    @rule()
    @_recorded
    def vacuum(self) -> None:
        final = [tid for tid, m in self.tasks.items() if m.status.is_final]
        count = self.call(self.suite.backend.vacuum())
        assert count == len(final), f"vacuum removed {count}, the model expected {len(final)}"
        for task_id in final:
            del self.tasks[task_id]

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    @_recorded
    def stored_state_matches(self) -> None:
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
            if model.status is Status.DONE:
                assert stored.result == str(task_id), "a DONE task lost its result"


def run_model(suite: Suite, loop: asyncio.AbstractEventLoop, examples: int, steps: int) -> None:
    """Run the model against ``suite``'s backend (call from a thread, not the loop)."""
    failures: list[Exception] = []
    machine = type(
        "QueueModel", (QueueMachine,), {"suite": suite, "loop": loop, "failures": failures}
    )
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except Flaky as exc:
        if not failures:
            raise
        raise AssertionError(
            f"{failures[0]} (the model's first failure; Hypothesis then reported"
            f" {type(exc).__name__}: the backend's state defeated the reset between examples)"
        ) from failures[0]


def _examples(default: int) -> int:
    value = os.environ.get(EXAMPLES_ENV, "")
    return int(value) if value.strip().isdigit() else default


class TestModel(SuiteTests):
    """The stateful model holds its invariants over random sequences of operations."""

    async def test_model(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, C.PUSH)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(run_model, conveyor_suite, loop, _examples(20), 25)

    @pytest.mark.slow
    async def test_model_deep(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, C.PUSH)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(run_model, conveyor_suite, loop, _examples(300), 60)
