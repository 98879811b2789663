"""Task management: fetch_by_id, update, reschedule, vacuum, resume_by_id, register_worker.

Which test holds each promise of the hookspecs these classes cover:

- fetch_by_id: any status, None if none: ``test_finds_a_task_in_every_status``,
  ``test_unknown_id_is_none``
- update: TaskNotFound: ``test_update_refuses_an_unknown_id``; what may change:
  ``test_update_overwrites``, ``test_update_can_cancel_a_pending_task``; what may not (id, queue,
  attempt, lease kept): ``test_update_keeps_queue_attempt_and_lease``; can_become:
  ``test_update_refuses_a_forbidden_transition``; never into or out of RUNNING:
  ``test_update_never_enters_or_leaves_running``; max_attempts below attempt or 1:
  ``test_update_refuses_max_attempts_below_attempt``; place in line: ``suite_order``
- reschedule: a PENDING task only moves in time, a FAILED one keeps its attempts:
  ``test_pending_and_failed_keep_their_attempts``; a held one gets its attempt back:
  ``test_a_held_task_gets_its_attempt_back``; finished refused: ``test_a_finished_task_is_refused``;
  lease cleared: ``test_a_held_task_is_rescheduled``; runs at run_at:
  ``test_a_rescheduled_task_runs_at_run_at``; StaleLease: ``test_a_stale_token_is_refused``;
  TaskNotFound: ``test_by_id_and_unknown_id``
- vacuum: DONE and KILLED of every queue, counted, nothing else:
  ``test_vacuum_removes_finished_tasks_and_counts_them``, ``test_vacuum_of_every_queue``
- resume_by_id: FAILED/KILLED/RUNNING -> PENDING now, lease cleared; killed restarts at 0,
  failed keeps, held gives its attempt back; holder's ack refused:
  ``test_resume_killed_failed_running``; on the last attempt: ``test_resume_of_a_last_attempt``;
  False for DONE, PENDING, unknown: ``test_nothing_to_resume``; the back of the line:
  ``suite_order``
- register_worker: listed, refreshed, never doubled: ``test_register_then_heartbeat``
"""

from __future__ import annotations

import attrs
import pytest

from conveyor.capability import Capability
from conveyor.errors import StaleLease, TaskNotFound
from conveyor.outcome import Done, Kill, Release, Retry
from conveyor.status import InvalidTransition, Status
from conveyor.task import Task
from conveyor.task_id import TaskId
from conveyor.testing.base import SuiteTests, need, need_clock
from conveyor.testing.support import Suite, claim, claim_all, worker

__all__ = [
    "TestFetchById",
    "TestRegisterWorker",
    "TestReschedule",
    "TestResumeById",
    "TestUpdate",
    "TestVacuum",
]


async def _fetch(suite: Suite, task_id: TaskId) -> Task[object]:
    need(suite, Capability.FETCH_BY_ID)
    task = await suite.backend.fetch_by_id(task_id)
    assert task is not None, f"task {task_id} vanished"
    return task


class TestFetchById(SuiteTests):
    """fetch_by_id finds a task in any status and returns None for an unknown id."""

    capability = Capability.FETCH_BY_ID

    async def test_unknown_id_is_none(self, conveyor_suite: Suite) -> None:
        assert await conveyor_suite.backend.fetch_by_id(TaskId.new()) is None

    async def test_finds_a_task_in_every_status(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        ids = await backend.push_many(["running", "done", "failed", "killed", "pending"])
        running, done, failed, killed = [await claim(backend) for _ in range(4)]
        assert running is not None and done is not None and failed is not None
        assert killed is not None
        await backend.hooks.ack(done, Done())
        await backend.hooks.ack(failed, Retry(conveyor_suite.later(3600), "later"))
        await backend.hooks.ack(killed, Kill("no"))
        seen = {}
        for task_id in ids:
            task = await backend.fetch_by_id(str(task_id))
            assert task is not None and task.id == task_id
            seen[task.args] = task.status
        assert seen == {
            "running": Status.RUNNING,
            "done": Status.DONE,
            "pending": Status.PENDING,
            "failed": Status.FAILED,
            "killed": Status.KILLED,
        }


class TestUpdate(SuiteTests):
    """update overwrites a stored task; unknown ids and forbidden transitions are refused."""

    capability = Capability.UPDATE

    async def test_update_overwrites(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        task_id = await backend.push({"v": 1}, priority=1, name="old")
        task = await _fetch(conveyor_suite, task_id)
        when = conveyor_suite.now()
        changed = attrs.evolve(
            task, args={"v": 2}, priority=9, meta={"k": "x"}, name="new", max_attempts=8,
            run_at=when, result="kept?", last_error="noted",
        )  # fmt: skip
        await backend.update(changed)
        again = await _fetch(conveyor_suite, task_id)
        assert again.args == {"v": 2}
        assert again.priority == 9
        assert dict(again.meta) == {"k": "x"}
        assert (again.name, again.max_attempts, again.last_error) == ("new", 8, "noted")
        assert again.result == "kept?"
        assert abs(again.run_at - when).total_seconds() < 1e-3
        delivered = await claim(backend)
        assert delivered is not None and backend.codec.decode(delivered.args) == {"v": 2}

    async def test_update_can_cancel_a_pending_task(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        task_id = await backend.push("cancel me")
        task = await _fetch(conveyor_suite, task_id)
        await backend.update(attrs.evolve(task, status=Status.KILLED, last_error="cancelled"))
        assert (await _fetch(conveyor_suite, task_id)).status is Status.KILLED
        assert await claim(backend) is None, "a KILLED task was delivered"

    async def test_update_refuses_an_unknown_id(self, conveyor_suite: Suite) -> None:
        with pytest.raises(TaskNotFound):
            await conveyor_suite.backend.update(Task(TaskId.new(), "ghost"))

    async def test_update_refuses_a_forbidden_transition(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        task_id = await backend.push("x")
        task = await _fetch(conveyor_suite, task_id)
        with pytest.raises(InvalidTransition):
            await backend.update(attrs.evolve(task, status=Status.DONE))
        assert (await _fetch(conveyor_suite, task_id)).status is Status.PENDING

    async def test_update_keeps_queue_attempt_and_lease(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        task_id = await backend.push("held")
        held = await claim(backend)
        assert held is not None and held.id == task_id
        stored = await _fetch(conveyor_suite, task_id)
        forged = attrs.evolve(
            stored, queue="conformance-elsewhere", attempt=4, lock_by="forger",
            lease_token="forged-token", lease_until=None, priority=3,  # noqa: S106
        )  # fmt: skip
        await backend.update(forged)
        again = await _fetch(conveyor_suite, task_id)
        assert again.queue == backend.queue, "update moved the task to another queue"
        assert again.attempt == 1, "update changed the attempt count"
        assert (again.lock_by, again.lease_token) == (held.lock_by, held.lease_token), (
            "update forged or broke the claim"
        )
        assert again.lease_until is not None
        assert again.priority == 3
        await backend.hooks.ack(held, Done())  # the real holder still can

    async def test_update_never_enters_or_leaves_running(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        pending_id, held_id = await backend.push_many(["pending", "held"])
        pending = await _fetch(conveyor_suite, pending_id)
        with pytest.raises(InvalidTransition):
            await backend.update(attrs.evolve(pending, status=Status.RUNNING))
        first = await claim(backend)
        assert first is not None and first.id == pending_id
        with pytest.raises(InvalidTransition):
            await backend.update(
                attrs.evolve(await _fetch(conveyor_suite, pending_id), status=Status.PENDING)
            )
        assert (await _fetch(conveyor_suite, pending_id)).status is Status.RUNNING
        assert (await _fetch(conveyor_suite, held_id)).status is Status.PENDING
        await backend.hooks.ack(first, Done())

    async def test_update_refuses_max_attempts_below_attempt(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        task_id = await backend.push("twice", max_attempts=5)
        for _ in range(2):
            held = await claim(backend)
            assert held is not None and held.id == task_id
            await backend.hooks.ack(held, Retry(conveyor_suite.now(), "again"))
        stored = await _fetch(conveyor_suite, task_id)
        assert stored.attempt == 2
        for bad in (1, 0):
            with pytest.raises(ValueError):
                await backend.update(attrs.evolve(stored, max_attempts=bad))
        assert (await _fetch(conveyor_suite, task_id)).max_attempts == 5
        await backend.update(attrs.evolve(stored, max_attempts=2))  # == attempt is allowed
        assert (await _fetch(conveyor_suite, task_id)).max_attempts == 2


class TestReschedule(SuiteTests):
    """reschedule puts a task back to PENDING at run_at, fenced by the lease token."""

    capability = Capability.RESCHEDULE

    async def test_a_held_task_is_rescheduled(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        await backend.push("again")
        task = await claim(backend)
        assert task is not None
        await backend.reschedule(task, run_at=conveyor_suite.later(3600))
        assert await claim(backend) is None, "a rescheduled task was delivered before run_at"
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await _fetch(conveyor_suite, task.id)
            assert stored.status is Status.PENDING
            assert stored.lease_token is None and stored.lock_by is None

    async def test_a_rescheduled_task_runs_at_run_at(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        task_id = await backend.push("again")
        task = await claim(backend)
        assert task is not None
        await backend.reschedule(task, run_at=conveyor_suite.later(50))
        conveyor_suite.clock.advance(51)
        again = await claim(backend)
        assert again is not None and again.id == task_id

    async def test_a_stale_token_is_refused(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        await backend.push("x")
        first = await claim(backend)
        assert first is not None
        await backend.hooks.ack(first, Release())
        second = await claim(backend)
        assert second is not None and second.id == first.id
        with pytest.raises(StaleLease):
            await backend.reschedule(first, run_at=conveyor_suite.later(3600))
        await backend.hooks.ack(second, Done())  # the new holder was not disturbed

    async def test_by_id_and_unknown_id(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        task_id = await backend.push("later", run_at=conveyor_suite.later(3600))
        await backend.reschedule(task_id)  # an operator's "run it now"
        got = await claim(backend)
        assert got is not None and got.id == task_id
        with pytest.raises(TaskNotFound):
            await backend.reschedule(TaskId.new())

    async def test_pending_and_failed_keep_their_attempts(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        task_id = await backend.push("x", max_attempts=3)
        held = await claim(backend)
        assert held is not None
        await backend.hooks.ack(held, Retry(conveyor_suite.later(3600), "later"))
        await backend.reschedule(task_id, run_at=conveyor_suite.later(1800))
        stored = await _fetch(conveyor_suite, task_id)
        assert (stored.status, stored.attempt) == (Status.PENDING, 1), "FAILED keeps its attempts"
        when = conveyor_suite.later(900)
        await backend.reschedule(task_id, run_at=when)
        stored = await _fetch(conveyor_suite, task_id)
        assert (stored.status, stored.attempt) == (Status.PENDING, 1), "PENDING only moves in time"
        assert abs(stored.run_at - when).total_seconds() < 1e-3

    async def test_a_held_task_gets_its_attempt_back(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        task_id = await backend.push("last attempt", max_attempts=1)
        held = await claim(backend)
        assert held is not None and held.attempt == 1
        await backend.reschedule(held, run_at=conveyor_suite.now())
        again = await claim(backend)
        assert again is not None and again.id == task_id, "a rescheduled task must run again"
        assert again.attempt == 1, "reschedule of a held task gives its attempt back"
        await backend.hooks.ack(again, Done())

    async def test_a_finished_task_is_refused(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        done_id, killed_id = await backend.push_many(["done", "killed"])
        done, killed = await claim(backend), await claim(backend)
        assert done is not None and killed is not None
        await backend.hooks.ack(done, Done())
        await backend.hooks.ack(killed, Kill("no"))
        for task_id, status in ((done_id, Status.DONE), (killed_id, Status.KILLED)):
            with pytest.raises(InvalidTransition):
                await backend.reschedule(task_id, run_at=conveyor_suite.now())
            assert (await _fetch(conveyor_suite, task_id)).status is status
        assert await claim(backend) is None


class TestVacuum(SuiteTests):
    """vacuum deletes DONE and KILLED tasks (only those) and counts them."""

    capability = Capability.VACUUM

    async def test_vacuum_removes_finished_tasks_and_counts_them(
        self, conveyor_suite: Suite
    ) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        await backend.vacuum()  # a store shared with earlier runs starts clean
        ids = await backend.push_many(["done", "killed", "failed", "running", "pending"])
        ids.append(await backend.push("other queue", queue="conformance-vacuum"))
        held = [await claim(backend) for _ in range(4)]
        assert all(t is not None for t in held)
        done, killed, failed, _running = (t for t in held if t is not None)
        await backend.hooks.ack(done, Done())
        await backend.hooks.ack(killed, Kill("no"))
        await backend.hooks.ack(failed, Retry(conveyor_suite.later(3600), "later"))
        assert await backend.vacuum() == 2, "vacuum must count the DONE and KILLED tasks removed"
        assert await backend.vacuum() == 0
        if backend.supports(Capability.FETCH_BY_ID):
            left = [await backend.fetch_by_id(i) for i in ids]
            assert [t is not None for t in left] == [False, False, True, True, True, True]

    async def test_vacuum_of_every_queue(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.UPDATE, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        await backend.vacuum()
        task_id = await backend.push("cancelled elsewhere", queue="conformance-vacuum")
        task = await _fetch(conveyor_suite, task_id)
        await backend.update(attrs.evolve(task, status=Status.KILLED))
        assert await backend.vacuum() == 1
        assert await backend.fetch_by_id(task_id) is None


class TestResumeById(SuiteTests):
    """resume_by_id revives FAILED, KILLED and RUNNING tasks, and nothing else."""

    capability = Capability.RESUME_BY_ID

    async def test_resume_killed_failed_running(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        ids = await backend.push_many(["killed", "failed", "running"], max_attempts=4)
        killed = await claim(backend)
        failed = await claim(backend)
        running = await claim(backend)
        assert killed is not None and failed is not None and running is not None
        await backend.hooks.ack(killed, Kill("no"))
        await backend.hooks.ack(failed, Retry(conveyor_suite.later(3600), "later"))
        for task_id in ids:
            assert await backend.resume_by_id(task_id) is True
        states = [await _fetch(conveyor_suite, i) for i in ids]
        assert [t.status for t in states] == [Status.PENDING] * 3
        assert [t.attempt for t in states] == [0, 1, 0], (
            "a killed task restarts from 0, a failed one keeps its count, a held one gets its"
            " attempt back"
        )
        for state in states:
            assert (state.lock_by, state.lease_token, state.lease_until) == (None, None, None)
        again = await claim_all(backend)
        assert sorted(t.id for t in again) == sorted(ids), "resumed tasks must be ready now"
        with pytest.raises(StaleLease):
            await backend.hooks.ack(running, Done())

    async def test_resume_of_a_last_attempt(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        task_id = await backend.push("last", max_attempts=1)
        held = await claim(backend)
        assert held is not None and held.attempt == 1
        assert await backend.resume_by_id(task_id) is True
        again = await claim(backend)
        assert again is not None and again.id == task_id, "a resumed task must run again"
        assert again.attempt <= again.max_attempts, "a claim exceeded max_attempts"
        with pytest.raises(StaleLease):
            await backend.hooks.ack(held, Done())
        await backend.hooks.ack(again, Done())

    async def test_nothing_to_resume(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        assert await backend.resume_by_id(TaskId.new()) is False
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        pending = await backend.push("pending", run_at=conveyor_suite.later(3600))
        done_id = await backend.push("done")
        done = await claim(backend)
        assert done is not None and done.id == done_id
        await backend.hooks.ack(done, Done())
        assert await backend.resume_by_id(pending) is False
        assert await backend.resume_by_id(done_id) is False
        assert await claim(backend) is None


class TestRegisterWorker(SuiteTests):
    """register_worker records a worker; heartbeats keep it fresh."""

    capability = Capability.REGISTER_WORKER

    async def test_register_then_heartbeat(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        who = worker(backend)
        await backend.register_worker(who)
        await backend.heartbeat(who)
        await backend.register_worker(who)  # registering again refreshes, never duplicates
        if backend.supports(Capability.LIST_WORKERS):
            rows = [w for w in await backend.list_workers() if w.id == who.name]
            assert len(rows) == 1, f"worker {who.name} listed {len(rows)} times"
