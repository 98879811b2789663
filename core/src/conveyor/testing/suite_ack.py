"""Ack outcomes and leases: fencing by token, retries, abandoned tasks resumed."""

from __future__ import annotations

import attrs
import pytest

from conveyor.capability import Capability
from conveyor.errors import StaleLease
from conveyor.outcome import Done, Kill, Release, Retry
from conveyor.status import Status
from conveyor.task import Task
from conveyor.testing.base import SuiteTests, need, need_clock
from conveyor.testing.support import Suite, claim, worker

__all__ = ["TestAck", "TestResumeAbandoned"]


async def _claimed(suite: Suite, args: object = "x", **options: object) -> Task[bytes]:
    need(suite, Capability.PUSH)
    task_id = await suite.backend.push(args, **options)  # type: ignore[arg-type]
    task = await claim(suite.backend)
    assert task is not None and task.id == task_id, "the pushed task was not delivered"
    return task


async def _status(suite: Suite, task: Task[bytes]) -> Task[object]:
    need(suite, Capability.FETCH_BY_ID)
    stored = await suite.backend.fetch_by_id(task.id)
    assert stored is not None, f"task {task.id} vanished"
    return stored


class TestAck(SuiteTests):
    """Each outcome lands in its status; a write under a stale lease token is refused."""

    capability = Capability.ACK

    async def test_done_stores_the_result(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite)
        await backend.hooks.ack(task, Done(backend.codec.encode({"ok": True})))
        stored = await _status(conveyor_suite, task)
        assert stored.status is Status.DONE
        assert stored.result == {"ok": True}
        assert stored.lease_token is None
        assert await claim(backend) is None, "a DONE task was delivered again"

    async def test_retry_fails_the_task_and_runs_it_again(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite, max_attempts=3)
        await backend.hooks.ack(task, Retry(conveyor_suite.now(), "boom"))
        again = await claim(backend)
        assert again is not None and again.id == task.id, "a retried task was not redelivered"
        assert again.attempt == 2
        assert again.lease_token != task.lease_token, "a new claim needs a new lease token"
        if backend.supports(Capability.FETCH_BY_ID):
            assert (await _status(conveyor_suite, again)).last_error == "boom"

    async def test_retry_waits_for_its_run_at(self, conveyor_suite: Suite) -> None:
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite)
        await backend.hooks.ack(task, Retry(conveyor_suite.later(60), "later"))
        if backend.supports(Capability.FETCH_BY_ID):
            assert (await _status(conveyor_suite, task)).status is Status.FAILED
        assert await claim(backend) is None, "a retry was delivered before its run_at"
        conveyor_suite.clock.advance(61)
        again = await claim(backend)
        assert again is not None and again.id == task.id

    async def test_retry_at_max_attempts_kills(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite, max_attempts=1)
        await backend.hooks.ack(task, Retry(conveyor_suite.now(), "last"))
        assert await claim(backend) is None, "a task ran more than max_attempts times"
        stored = await _status(conveyor_suite, task)
        assert stored.status is Status.KILLED
        assert stored.attempt == 1

    async def test_kill(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite)
        await backend.hooks.ack(task, Kill("bad input"))
        assert await claim(backend) is None, "a KILLED task was delivered again"
        stored = await _status(conveyor_suite, task)
        assert stored.status is Status.KILLED
        assert stored.last_error == "bad input"

    async def test_release_gives_back_the_attempt(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite)
        await backend.hooks.ack(task, Release())
        again = await claim(backend)
        assert again is not None and again.id == task.id, "a released task was not redelivered"
        assert again.attempt == 1, "a released attempt must not be counted"

    async def test_a_forged_token_is_refused(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite)
        forged = attrs.evolve(task, lease_token=task.lease_token + "-forged")  # type: ignore[operator]
        with pytest.raises(StaleLease):
            await backend.hooks.ack(forged, Done())
        await backend.hooks.ack(task, Done())  # the real holder still can

    async def test_a_second_ack_is_refused(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite)
        await backend.hooks.ack(task, Kill("first"))
        with pytest.raises(StaleLease):
            await backend.hooks.ack(task, Done())
        if backend.supports(Capability.FETCH_BY_ID):
            assert (await _status(conveyor_suite, task)).status is Status.KILLED

    async def test_an_old_attempt_cannot_ack_the_new_one(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        first = await _claimed(conveyor_suite)
        await backend.hooks.ack(first, Release())
        second = await claim(backend)
        assert second is not None and second.id == first.id
        with pytest.raises(StaleLease):
            await backend.hooks.ack(first, Done())
        await backend.hooks.ack(second, Done())


class TestResumeAbandoned(SuiteTests):
    """An expired lease is put back with its attempt counted; the old holder is fenced out."""

    capability = Capability.RESUME_ABANDONED

    async def test_an_expired_lease_is_resumed(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.ACK)
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        first = await _claimed(conveyor_suite, max_attempts=3)
        assert await backend.resume_abandoned() == 0, "a live lease was resumed"
        assert first.lease_until is not None
        clock.set(first.lease_until.timestamp() + 1)
        assert await backend.resume_abandoned() >= 1
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await _status(conveyor_suite, first)
            assert stored.status is Status.PENDING
            assert stored.attempt == 1, "the lost attempt must stay counted"
        second = await claim(backend)
        assert second is not None and second.id == first.id, "a resumed task was not delivered"
        assert second.attempt == 2
        with pytest.raises(StaleLease):
            await backend.hooks.ack(first, Done())
        await backend.hooks.ack(second, Done())

    async def test_an_expired_lease_at_max_attempts_is_killed(self, conveyor_suite: Suite) -> None:
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite, max_attempts=1)
        assert task.lease_until is not None
        clock.set(task.lease_until.timestamp() + 1)
        assert await backend.resume_abandoned() >= 1
        assert await claim(backend) is None, "a task ran more than max_attempts times"
        stored = await _status(conveyor_suite, task)
        assert stored.status is Status.KILLED
        assert stored.last_error, "a task killed for a lost worker needs a last_error"

    async def test_a_heartbeat_keeps_the_lease(self, conveyor_suite: Suite) -> None:
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        need(conveyor_suite, Capability.PUSH)
        await backend.push("held")
        who = worker(backend)
        task = await claim(backend, who)
        assert task is not None and task.lease_until is not None
        lease = task.lease_until.timestamp() - clock.time()
        assert lease > 0, "lease_until must be after the claim"
        clock.advance(lease * 0.75)
        await backend.heartbeat(who)
        clock.advance(lease * 0.75)
        assert await backend.resume_abandoned() == 0, "a heartbeat did not extend the lease"
        assert await claim(backend) is None
