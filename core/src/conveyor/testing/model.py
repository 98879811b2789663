"""A stateful model of a queue (Hypothesis ``RuleBasedStateMachine``) run against a backend.

Rules cover every hook the backend has: push, claim by two workers, ack (done,
retry, kill, release), heartbeat, move time, expire leases, resume abandoned,
reschedule (held or waiting), resume by id (any task, finished ones included),
update (reprioritise, cancel), vacuum, check_status, wait_for, listings and
metrics, and stale-token replays. After every step the backend must agree with
the model: nothing acknowledged lost, nothing delivered that was not pushed,
each task in exactly one state with the attempt count the contract gives it,
no claim past ``max_attempts`` or before ``run_at``, delivery in order
(priority, then run_at, then id), stale tokens refused, listings and metrics
counting what is there.

Hypothesis drives the machine synchronously in a thread; each backend call is
sent to the test's event loop, where the backend lives. The default run (20
examples of 25 steps) is part of every suite run; ``CONVEYOR_MODEL_EXAMPLES``
sizes it, and ``test_model_deep`` (``-m slow``) runs 300 examples of 60 steps.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.stateful import (
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor.errors import StaleLease
from conveyor.outcome import Done, Kill, Release, Retry
from conveyor.status import Status
from conveyor.task import Task
from conveyor.testing.base import SuiteTests, need
from conveyor.testing.model_base import C, MachineBase, Model, recorded
from conveyor.testing.support import HANG_GUARD, Suite

__all__ = ["QueueMachine", "TestModel", "EXAMPLES_ENV", "run_model"]

EXAMPLES_ENV = "CONVEYOR_MODEL_EXAMPLES"
"""Environment variable: how many examples the model runs (default 20; ``make soak`` more)."""

SHRINK_ENV = "CONVEYOR_MODEL_SHRINK"
"""Environment variable: set to 1 to shrink a failing example to its shortest form.

Off by default: against a slow store, shrinking a failure takes minutes, and the
unshrunk example (at most 25 steps) already names the step that failed."""

_FINISHED = (Status.DONE, Status.KILLED)


class QueueMachine(MachineBase):
    """The rules; the plumbing and the model's bookkeeping are in ``MachineBase``."""

    @rule(
        priority=st.sampled_from([-1, 0, 0, 2]),
        delay=st.sampled_from([None, None, 10.5, 45.25]),
        max_attempts=st.integers(1, 3),
    )
    @recorded
    def push(self, priority: int, delay: float | None, max_attempts: int) -> None:
        if delay is not None and self.suite.clock is None:
            delay = 3600.0  # without a clock a delayed task simply never comes due here
        run_at = None if delay is None else self.suite.later(delay)
        backend = self.suite.backend
        task_id = self.call(
            backend.push(self.pushed, run_at=run_at, priority=priority, max_attempts=max_attempts)
        )
        assert task_id not in self.tasks, "push returned an id it had returned before"
        when = self.stored_run_at(task_id, run_at)
        self.tasks[task_id] = Model(Status.PENDING, max_attempts, priority, when)
        self.pushed += 1

    @rule(target=MachineBase.stale, who=st.integers(0, 1))
    @recorded
    def take(self, who: int) -> Task[bytes] | None:
        task = self.claim(who)
        ready = self.ready()
        if task is None:
            assert not ready, f"poll reported nothing ready while {len(ready)} task(s) were ready"
            return None
        model = self.tasks.get(task.id)
        assert model is not None, f"poll delivered {task.id}, which was never pushed (or vacuumed)"
        assert model.status.is_ready_state, f"poll delivered a {model.status.value} task"
        assert model.run_at <= self.now() + 1e-3, "poll delivered a task before its run_at"
        self.check_order(task.id, ready)
        assert task.attempt == model.attempt + 1, f"attempt {task.attempt}, expected +1"
        assert task.attempt <= task.max_attempts, "a task was delivered past max_attempts"
        assert task.status is Status.RUNNING and task.lease_token
        assert task.lock_by == self.workers[who].name, "lock_by must name the claiming worker"
        previous = model.held
        model.status, model.attempt, model.held = Status.RUNNING, task.attempt, task
        model.deadline = task.lease_until.timestamp() if task.lease_until else None
        model.lease = (model.deadline or self.now()) - self.now()
        if not self.has(C.ACK):
            del self.tasks[task.id]  # at-most-once: a claim removes the task
        return previous or task

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data())
    @recorded
    def ack_done(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        model = self.ack(task_id, Done(self.suite.backend.codec.encode(str(task_id))))
        model.status = Status.DONE

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data(), delay=st.sampled_from([0.0, 20.0]))
    @recorded
    def ack_retry(self, data: st.DataObject, delay: float) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        if self.suite.clock is None and delay:
            delay = 3600.0
        when = self.suite.later(delay)
        model = self.ack(task_id, Retry(when, "model retry"))
        if model.attempt >= model.max_attempts:
            model.status = Status.KILLED
        else:
            model.status, model.run_at = Status.FAILED, self.stored_run_at(task_id, when)

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data())
    @recorded
    def ack_kill(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        self.ack(task_id, Kill("model kill")).status = Status.KILLED

    @precondition(lambda self: self.has(C.ACK) and self.running())
    @rule(data=st.data())
    @recorded
    def release(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(self.running()))
        model = self.ack(task_id, Release())
        model.status, model.attempt = Status.PENDING, model.attempt - 1  # run_at unchanged

    @precondition(lambda self: self.has(C.ACK))
    @rule(old=consumes(MachineBase.stale))
    @recorded
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

    @rule(who=st.integers(0, 1))
    @recorded
    def heartbeat(self, who: int) -> None:
        name = self.workers[who].name
        now = self.now()
        expired = [t for t in self.running() if self.expired(t, now)]
        if expired and not self.has(C.FETCH_BY_ID):
            return  # a heartbeat may resume abandoned tasks; unseen without fetch_by_id
        self.call(self.suite.backend.heartbeat(self.workers[who]))
        for task_id in self.running():
            model = self.tasks[task_id]
            assert model.held is not None
            if task_id in expired:
                self.absorb_heartbeat_resume(task_id)
            elif model.held.lock_by == name:
                model.deadline = self.stored_deadline(task_id, model)

    @precondition(lambda self: self.suite.clock is not None)
    @rule(seconds=st.sampled_from([4.25, 17.75, 51.5]))  # never summing to a deadline exactly
    @recorded
    def advance(self, seconds: float) -> None:
        assert self.suite.clock is not None
        self.suite.clock.advance(seconds)

    @precondition(lambda self: self.suite.clock is not None and self.running())
    @rule()
    @recorded
    def expire_leases(self) -> None:
        assert self.suite.clock is not None
        latest = max(self.tasks[t].deadline or 0.0 for t in self.running())
        self.suite.clock.set(max(self.suite.clock.time(), latest + 1))

    @precondition(lambda self: self.has(C.RESUME_ABANDONED, C.ACK))
    @rule()
    @recorded
    def resume_abandoned(self) -> None:
        now = self.now()
        expired = [t for t in self.running() if self.expired(t, now)]
        count = self.call(self.suite.backend.resume_abandoned())
        assert count == len(expired), f"resume_abandoned touched {count}, expected {len(expired)}"
        for task_id in expired:
            model = self.tasks[task_id]
            model.held = model.deadline = None
            model.status = Status.KILLED if model.attempt >= model.max_attempts else Status.PENDING

    @precondition(lambda self: self.has(C.RESCHEDULE, C.ACK) and self.waiting_or_held())
    @rule(data=st.data(), delay=st.sampled_from([0.0, 30.0]))
    @recorded
    def reschedule(self, data: st.DataObject, delay: float) -> None:
        task_id = data.draw(st.sampled_from(self.waiting_or_held()))
        model = self.tasks[task_id]
        when = self.suite.later(delay if self.suite.clock is not None or not delay else 3600)
        target = model.held if model.held is not None else task_id
        self.call(self.suite.backend.reschedule(target, run_at=when))
        if model.status is Status.RUNNING:
            model.attempt -= 1  # a held task gets its attempt back, as Release does
        model.held = model.deadline = None
        model.status, model.run_at = Status.PENDING, self.stored_run_at(task_id, when)

    @precondition(lambda self: self.has(C.RESUME_BY_ID, C.ACK) and self.tasks)
    @rule(data=st.data(), finished=st.booleans())
    @recorded
    def resume_by_id(self, data: st.DataObject, finished: bool) -> None:
        done = sorted(t for t, m in self.tasks.items() if m.status in _FINISHED)
        task_id = data.draw(st.sampled_from(done if finished and done else sorted(self.tasks)))
        model = self.tasks[task_id]
        expected = model.status in (Status.FAILED, Status.KILLED, Status.RUNNING)
        assert self.call(self.suite.backend.resume_by_id(task_id)) is expected, (
            f"resume_by_id of a {model.status.value} task must return {expected}"
        )
        if expected:
            if model.status is Status.KILLED:
                model.attempt = 0
            elif model.status is Status.RUNNING:
                model.attempt -= 1
            model.status, model.held, model.deadline = Status.PENDING, None, None
            model.run_at = self.stored_run_at(task_id, None)

    @precondition(lambda self: self.has(C.UPDATE, C.FETCH_BY_ID) and self.waiting())
    @rule(data=st.data(), priority=st.sampled_from([-2, 3]), cancel=st.booleans())
    @recorded
    def update(self, data: st.DataObject, priority: int, cancel: bool) -> None:
        task_id = data.draw(st.sampled_from(self.waiting()))
        model = self.tasks[task_id]
        stored = self.call(self.suite.backend.fetch_by_id(task_id))
        assert stored is not None
        status = Status.KILLED if cancel else stored.status
        self.call(self.suite.backend.update(attrs.evolve(stored, priority=priority, status=status)))
        model.priority, model.status = priority, status

    @precondition(lambda self: self.has(C.VACUUM))
    @rule()
    @recorded
    def vacuum(self) -> None:
        final = [tid for tid, m in self.tasks.items() if m.status.is_final]
        count = self.call(self.suite.backend.vacuum())
        assert count == len(final), f"vacuum removed {count}, the model expected {len(final)}"
        for task_id in final:
            del self.tasks[task_id]

    @precondition(lambda self: self.has(C.CHECK_STATUS) and self.tasks)
    @rule()
    @recorded
    def check_status(self) -> None:
        ids = sorted(self.tasks)
        results = self.call(self.suite.backend.check_status(ids))
        got = sorted((r.task_id, r.status) for r in results)
        expected = sorted((t, self.tasks[t].status) for t in ids if self.tasks[t].status.is_final)
        assert got == expected, f"check_status reported {got}, the model expected {expected}"

    @precondition(lambda self: self.has(C.WAIT_FOR) and self.finished())
    @rule()
    @recorded
    def wait_for_finished(self) -> None:
        ids = self.finished()

        async def collect() -> list[Any]:
            return [r async for r in self.suite.backend.wait_for(ids, timeout=HANG_GUARD)]

        got = sorted((r.task_id, r.status) for r in self.call(collect()))
        assert got == sorted((t, self.tasks[t].status) for t in ids), (
            f"wait_for of finished tasks reported {got}"
        )

    @invariant()
    @recorded
    def stored_state_matches(self) -> None:
        self.check_stored()
        self.check_listings()


def run_model(
    suite: Suite, loop: asyncio.AbstractEventLoop, examples: int, steps: int, shrink: bool = False
) -> None:
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
                phases=list(Phase) if shrink else [p for p in Phase if p is not Phase.shrink],
                report_multiple_bugs=False,
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


def _shrink() -> bool:
    return os.environ.get(SHRINK_ENV, "").strip() in ("1", "true", "yes")


class TestModel(SuiteTests):
    """The stateful model holds its invariants over random sequences of operations."""

    async def test_model(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, C.PUSH)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(run_model, conveyor_suite, loop, _examples(20), 25, _shrink())

    @pytest.mark.slow
    async def test_model_deep(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, C.PUSH)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(run_model, conveyor_suite, loop, _examples(300), 60, _shrink())
