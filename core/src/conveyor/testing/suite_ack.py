"""Ack outcomes and leases: fencing by token, retries, abandoned tasks resumed.

Which test holds each promise of ``hookspecs.ack``:

- Done -> DONE with the result: ``test_done_stores_the_result``
- Retry -> FAILED with last_error at the retry's run_at:
  ``test_retry_fails_the_task_and_runs_it_again``, ``test_retry_waits_for_its_run_at``;
  KILLED once attempt >= max_attempts:
  ``test_retry_at_max_attempts_kills``, ``test_retry_kills_on_the_last_attempt_only``
- Kill -> KILLED with last_error: ``test_kill``
- Release -> PENDING, attempt uncounted, run_at unchanged: ``test_release_gives_back_the_attempt``
  (its place in line: ``suite_order``)
- the lease is cleared: ``test_every_outcome_clears_the_lease``
- StaleLease for a token the store no longer holds: ``test_a_forged_token_is_refused``,
  ``test_a_second_ack_is_refused``, ``test_an_old_attempt_cannot_ack_the_new_one``; for a
  task vacuumed meanwhile: ``test_an_ack_of_a_vacuumed_task_is_stale``

``hookspecs.heartbeat`` and ``hookspecs.resume_abandoned`` (``TestResumeAbandoned``):

- heartbeat extends the leases the worker holds: ``test_a_heartbeat_keeps_the_lease``; only
  its own: ``test_a_heartbeat_extends_only_its_own_leases``; an expired one stays expired:
  ``test_a_heartbeat_does_not_revive_an_expired_lease``; until resumed, an ack under the
  token is accepted: ``test_an_ack_after_the_deadline_is_accepted_until_resumed``
- the lost attempt stays counted, PENDING with run_at unchanged, last_error says the worker
  was lost: ``test_an_expired_lease_is_resumed``; KILLED at max_attempts:
  ``test_an_expired_lease_at_max_attempts_is_killed``; the old holder's ack refused: both
- expired once now >= lease_until: ``test_a_lease_expires_at_its_deadline``
- returns how many were touched: every test above counts it
"""

from __future__ import annotations

import attrs
import pytest

from conveyor.capability import Capability
from conveyor.errors import StaleLease
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
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

    async def test_retry_kills_on_the_last_attempt_only(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        first = await _claimed(conveyor_suite, max_attempts=2)
        when = conveyor_suite.now()
        await backend.hooks.ack(first, Retry(when, "one"))
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await _status(conveyor_suite, first)
            assert stored.status is Status.FAILED, "a retry with an attempt left must FAIL"
            assert stored.last_error == "one"
            assert abs(stored.run_at - when).total_seconds() < 1e-3
        second = await claim(backend)
        assert second is not None and second.id == first.id and second.attempt == 2
        await backend.hooks.ack(second, Retry(conveyor_suite.now(), "two"))
        assert await claim(backend) is None, "a task ran more than max_attempts times"
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await _status(conveyor_suite, first)
            assert (stored.status, stored.attempt, stored.last_error) == (Status.KILLED, 2, "two")

    async def test_every_outcome_clears_the_lease(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        outcomes: list[Outcome] = [
            Done(),
            Retry(conveyor_suite.later(3600), "r"),
            Kill("k"),
            Release(),
        ]
        for outcome in outcomes:
            task = await _claimed(conveyor_suite, max_attempts=3)
            await backend.hooks.ack(task, outcome)
            stored = await _status(conveyor_suite, task)
            lease = (stored.lock_by, stored.lease_token, stored.lease_until)
            assert lease == (None, None, None), f"{type(outcome).__name__} left a lease: {lease}"
            if isinstance(outcome, Release):
                assert stored.status is Status.PENDING and stored.attempt == 0
                assert abs(stored.run_at - task.run_at).total_seconds() < 1e-3, (
                    "Release keeps run_at unchanged"
                )
                await claim(backend)  # out of the way of the next outcome

    async def test_an_ack_of_a_vacuumed_task_is_stale(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.VACUUM)
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite)
        await backend.hooks.ack(task, Done())
        assert await backend.vacuum() >= 1
        with pytest.raises(StaleLease):
            await backend.hooks.ack(task, Done())


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
            assert stored.last_error, "a task resumed for a lost worker needs a last_error"
            assert (stored.lock_by, stored.lease_token, stored.lease_until) == (None, None, None)
            assert abs(stored.run_at - first.run_at).total_seconds() < 1e-3, "run_at unchanged"
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

    async def test_a_heartbeat_extends_only_its_own_leases(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        await backend.push_many(["mine", "theirs"])
        me, them = worker(backend), worker(backend)
        mine = await claim(backend, me)
        theirs = await claim(backend, them)
        assert mine is not None and theirs is not None and mine.lease_until is not None
        lease = mine.lease_until.timestamp() - clock.time()
        clock.advance(lease * 0.75)
        await backend.heartbeat(me)
        clock.advance(lease * 0.75)
        assert await backend.resume_abandoned() == 1, (
            "a heartbeat must extend its own worker's leases, and only those"
        )
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await backend.fetch_by_id(theirs.id)
            assert stored is not None and stored.status is Status.PENDING
            kept = await backend.fetch_by_id(mine.id)
            assert kept is not None and kept.status is Status.RUNNING
            assert kept.lease_until is not None and kept.lease_until > mine.lease_until

    async def test_a_heartbeat_does_not_revive_an_expired_lease(
        self, conveyor_suite: Suite
    ) -> None:
        need(conveyor_suite, Capability.PUSH)
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        await backend.push("expired", max_attempts=3)
        who = worker(backend)
        task = await claim(backend, who)
        assert task is not None and task.lease_until is not None
        clock.set(task.lease_until.timestamp() + 1)
        await backend.heartbeat(who)
        resumed = await backend.resume_abandoned()
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await backend.fetch_by_id(task.id)
            assert stored is not None
            # the backend may resume abandoned tasks inside heartbeat itself
            assert stored.status is Status.PENDING, "a heartbeat revived an expired lease"
        else:
            assert resumed == 1, "a heartbeat revived an expired lease"

    async def test_an_ack_after_the_deadline_is_accepted_until_resumed(
        self, conveyor_suite: Suite
    ) -> None:
        need(conveyor_suite, Capability.ACK)
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite, max_attempts=3)
        assert task.lease_until is not None
        clock.set(task.lease_until.timestamp() + 1)
        await backend.hooks.ack(task, Done(backend.codec.encode("late")))
        assert await backend.resume_abandoned() == 0, "a finished task was resumed"
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await _status(conveyor_suite, task)
            assert stored.status is Status.DONE and stored.result == "late"

    async def test_a_lease_expires_at_its_deadline(self, conveyor_suite: Suite) -> None:
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        task = await _claimed(conveyor_suite, max_attempts=3)
        deadline = task.lease_until
        if backend.supports(Capability.FETCH_BY_ID):
            deadline = (await _status(conveyor_suite, task)).lease_until  # as stored
        assert deadline is not None
        clock.set(deadline.timestamp() - 0.5)
        assert await backend.resume_abandoned() == 0, "a lease expired before its deadline"
        clock.set(deadline.timestamp())
        assert await backend.resume_abandoned() == 1, "a lease has expired once now >= lease_until"
