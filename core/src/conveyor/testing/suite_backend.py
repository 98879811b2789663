"""The required Backend trait: poll, heartbeat, middleware, close; claim order and timing.

Which test holds each promise of ``hookspecs.poll`` (order: ``suite_order``;
heartbeat's leases: ``suite_ack.TestResumeAbandoned``):

- claimed: RUNNING, attempt counted, lock_by, fresh token, deadline:
  ``test_a_claim_is_marked_running_with_a_lease``, ``test_each_claim_has_a_fresh_token``
- None means nothing ready now: ``test_poll_yields_none_when_nothing_is_ready``
- a poll that never awaits starves the loop: ``test_poll_awaits_between_nones``
- ready is PENDING/FAILED with run_at <= now: ``test_a_task_due_exactly_now_is_ready``,
  ``test_nothing_is_delivered_before_run_at``, ``test_a_delayed_task_is_delivered_once_due``
- higher priority first, FIFO within one: ``test_higher_priority_first``,
  ``test_fifo_within_a_priority``
- an expired lease is not handed out until resumed: ``test_an_expired_lease_is_not_handed_out``
- never claim ahead of demand: ``test_no_claim_ahead_of_demand``
- a cancelled wait claims nothing: ``test_a_cancelled_wait_claims_nothing``
- without ack, poll removes what it hands out: ``test_a_claim_removes_the_task_only_without_ack``
- a claim is never handed to a second worker, nothing lost or doubled:
  ``test_a_claimed_task_is_not_handed_to_a_second_worker``,
  ``test_no_task_is_lost_or_duplicated_by_claims``
- heartbeat of an idle worker, middleware, close idempotent: the tests named after them
"""

from __future__ import annotations

import asyncio

from conveyor.capability import Capability
from conveyor.status import Status
from conveyor.testing.base import SuiteTests, need, need_clock
from conveyor.testing.support import HANG_GUARD, Stream, Suite, claim, claim_all, worker

SPIN_LIMIT = 1000
"""``None`` items a poll stream may yield without once letting the event loop run."""

__all__ = ["TestBackend"]


class TestBackend(SuiteTests):
    """poll yields None when idle, claims in priority then FIFO order, never early or twice."""

    async def test_poll_yields_none_when_nothing_is_ready(self, conveyor_suite: Suite) -> None:
        assert await claim(conveyor_suite.backend) is None

    async def test_middleware_is_a_sequence_of_callables(self, conveyor_suite: Suite) -> None:
        layers = list(conveyor_suite.backend.middleware())
        for layer in layers:
            assert callable(layer), f"middleware {layer!r} is not callable"

    async def test_heartbeat_of_an_idle_worker_is_harmless(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        who = worker(backend)
        await backend.heartbeat(who)
        await backend.heartbeat(who)
        assert await claim(backend, who) is None

    async def test_close_is_idempotent(self, conveyor_suite: Suite) -> None:
        hooks = conveyor_suite.backend.hooks
        await hooks.close()
        await hooks.close()  # the suite's teardown closes a third time

    async def test_a_claim_is_marked_running_with_a_lease(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        before = conveyor_suite.now()
        task_id = await backend.push({"n": 1})
        who = worker(backend)
        task = await claim(backend, who)
        assert task is not None, "a pushed task was not delivered"
        assert task.id == task_id
        assert task.status is Status.RUNNING
        assert task.attempt == 1
        assert task.lock_by == who.name
        assert task.lease_token, "a claimed task must carry a lease token"
        assert task.lease_until is not None and task.lease_until > before
        assert backend.codec.decode(task.args) == {"n": 1}

    async def test_fifo_within_a_priority(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        ids = [await backend.push(i) for i in range(6)]
        got = [t.id for t in await claim_all(backend)]
        assert got == ids, "tasks of one priority must be delivered in push order"

    async def test_higher_priority_first(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        low = await backend.push("low", priority=-5)
        mid = await backend.push("mid", priority=0)
        high = await backend.push("high", priority=7)
        mid2 = await backend.push("mid2", priority=0)
        got = [t.id for t in await claim_all(backend)]
        assert got == [high, mid, mid2, low], "higher priority first, FIFO within a priority"

    async def test_nothing_is_delivered_before_run_at(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        await backend.push("later", run_at=conveyor_suite.later(3600))
        assert await claim(backend) is None, "a task was delivered before its run_at"

    async def test_a_delayed_task_is_delivered_once_due(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        later = await backend.push("later", run_at=conveyor_suite.later(30))
        now = await backend.push("now")
        first = await claim(backend)
        assert first is not None and first.id == now
        assert await claim(backend) is None, "a task was delivered before its run_at"
        conveyor_suite.clock.advance(31)
        due = await claim(backend)
        assert due is not None and due.id == later, "a due task was not delivered"

    async def test_a_claimed_task_is_not_handed_to_a_second_worker(
        self, conveyor_suite: Suite
    ) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        task_id = await backend.push("once")
        first = await claim(backend, worker(backend))
        assert first is not None and first.id == task_id
        second = await claim(backend, worker(backend))
        assert second is None, f"task {task_id} was handed to a second worker while claimed"

    async def test_no_task_is_lost_or_duplicated_by_claims(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        ids = await backend.push_many(range(25))
        got = [t.id for t in await claim_all(backend)]
        assert len(got) == len(set(got)), "a task was delivered twice"
        assert set(got) == set(ids), f"{len(set(ids) - set(got))} pushed task(s) never delivered"

    async def test_each_claim_has_a_fresh_token(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        await backend.push_many(range(3))
        tokens = [t.lease_token for t in await claim_all(backend)]
        assert len(tokens) == 3 and len(set(tokens)) == 3, f"lease tokens repeat: {tokens}"

    async def test_poll_awaits_between_nones(self, conveyor_suite: Suite) -> None:
        """A stream that yields None without ever awaiting hangs the worker's event loop."""
        backend = conveyor_suite.backend
        ran = 0

        async def other() -> None:
            nonlocal ran
            while True:
                ran += 1
                await asyncio.sleep(0)

        stream = backend.poll(worker(backend))
        ticker = asyncio.ensure_future(other())
        try:
            async with asyncio.timeout(HANG_GUARD):
                await asyncio.sleep(0)
                start = ran
                for _ in range(SPIN_LIMIT):
                    assert await anext(stream) is None, "poll delivered a task nobody pushed"
                    if ran > start:
                        break
                else:
                    raise AssertionError(
                        f"poll yielded None {SPIN_LIMIT} times without awaiting once: it starves"
                        " the event loop (wait a little for a push before yielding None again)"
                    )
        finally:
            ticker.cancel()
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    async def test_a_task_due_exactly_now_is_ready(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        when = conveyor_suite.later(30)
        task_id = await backend.push("due", run_at=when)
        conveyor_suite.clock.set(when.timestamp())
        got = await claim(backend)
        assert got is not None and got.id == task_id, "a task whose run_at == now is ready"

    async def test_an_expired_lease_is_not_handed_out(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        task_id = await backend.push("held", max_attempts=3)
        first = await claim(backend)
        assert first is not None and first.id == task_id and first.lease_until is not None
        conveyor_suite.clock.set(first.lease_until.timestamp() + 1)
        again = await claim(backend, worker(backend))
        assert again is None, "a task whose lease expired was handed out before resume_abandoned"

    async def test_no_claim_ahead_of_demand(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        first_id, second_id = await backend.push_many(["first", "second"])
        async with Stream(backend) as stream:
            first = await stream.next()
            assert first is not None and first.id == first_id
            if backend.supports(Capability.FETCH_BY_ID):
                stored = await backend.fetch_by_id(second_id)
                assert stored is not None and stored.status is Status.PENDING, (
                    "poll claimed a task nobody asked for yet"
                )
            other = await claim(backend, worker(backend))
            assert other is not None and other.id == second_id, (
                "a worker holding one task kept the next from another worker (claimed ahead)"
            )

    async def test_a_cancelled_wait_claims_nothing(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        async with Stream(backend) as stream:
            assert await stream.next() is None
            waiting = asyncio.ensure_future(stream.raw_next())
            for _ in range(5):
                await asyncio.sleep(0)  # let it enter its wait
            task_id = await backend.push("after the cancel")
            waiting.cancel()
            try:
                got = await waiting
            except asyncio.CancelledError:
                got = None
        if got is not None:
            assert got.id == task_id  # it finished before the cancel: a real claim
            return
        other = await claim(backend, worker(backend))
        assert other is not None and other.id == task_id, "a cancelled poll claimed the task"
        assert other.attempt == 1, "a cancelled poll counted an attempt"

    async def test_a_claim_removes_the_task_only_without_ack(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        task_id = await backend.push("once")
        assert (await claim(backend)) is not None
        stored = await backend.fetch_by_id(task_id)
        if backend.supports(Capability.ACK):
            assert stored is not None and stored.status is Status.RUNNING, (
                "with ack (at-least-once) a claimed task stays stored, RUNNING, until acked"
            )
        else:
            assert stored is None, "without ack (at-most-once) poll removes what it hands out"
