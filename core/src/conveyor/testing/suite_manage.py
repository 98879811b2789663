"""Task management: fetch_by_id, update, reschedule, vacuum, resume_by_id, register_worker."""

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
        ids = await backend.push_many(["running", "done", "pending"])
        running = await claim(backend)
        done = await claim(backend)
        assert running is not None and done is not None
        await backend.hooks.ack(done, Done())
        seen = {}
        for task_id in ids:
            task = await backend.fetch_by_id(str(task_id))
            assert task is not None and task.id == task_id
            seen[task.args] = task.status
        assert seen == {"running": Status.RUNNING, "done": Status.DONE, "pending": Status.PENDING}


class TestUpdate(SuiteTests):
    """update overwrites a stored task; unknown ids and forbidden transitions are refused."""

    capability = Capability.UPDATE

    async def test_update_overwrites(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        task_id = await backend.push({"v": 1}, priority=1)
        task = await _fetch(conveyor_suite, task_id)
        await backend.update(attrs.evolve(task, args={"v": 2}, priority=9, meta={"k": "x"}))
        again = await _fetch(conveyor_suite, task_id)
        assert again.args == {"v": 2}
        assert again.priority == 9
        assert dict(again.meta) == {"k": "x"}
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
        assert [t.attempt for t in states] == [0, 1, 1], "a killed task restarts from attempt 0"
        again = await claim_all(backend)
        assert sorted(t.id for t in again) == sorted(ids), "resumed tasks must be ready now"
        with pytest.raises(StaleLease):
            await backend.hooks.ack(running, Done())

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
