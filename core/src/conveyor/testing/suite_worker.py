"""The backend used the way ``conveyor.Worker`` uses it, not one call at a time.

A worker keeps one poll stream open for its whole life while time moves, runs
several lanes (and several workers share a queue), loses a lease and claims
again under the same name, and a durable store is closed and reopened between
runs. Which test holds what:

- one stream kept open sees later pushes: ``test_an_open_stream_sees_later_pushes``
- one stream kept open while time moves delivers what comes due:
  ``test_an_open_stream_delivers_what_comes_due``
- several workers polling at once share the tasks, none twice:
  ``test_several_workers_polling_at_once``
- the same worker claims again after its lease was lost (new token, old one fenced):
  ``test_the_same_worker_claims_again_after_losing_its_lease``
- a store reopened between steps keeps order, fields, leases and results:
  ``test_a_reopened_store_keeps_order_and_fields``, ``test_a_lease_survives_a_reopen``
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.errors import StaleLease
from conveyor.outcome import Done
from conveyor.status import Status
from conveyor.task import Task
from conveyor.task_id import TaskId
from conveyor.testing.base import SuiteTests, need, need_clock
from conveyor.testing.support import Stream, Suite, claim, claim_all, worker

__all__ = ["TestWorkerUse"]


class TestWorkerUse(SuiteTests):
    """Streams kept open, concurrent pollers, a lost lease claimed again, a reopened store."""

    row = "as-worker"

    @pytest.fixture
    def reopen(self, conveyor_reopen: Callable[[], Backend] | None) -> Callable[[], Backend]:
        if conveyor_reopen is None:
            pytest.skip("no conveyor_reopen fixture: the backend is not reopenable")
        return conveyor_reopen

    async def test_an_open_stream_sees_later_pushes(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        async with Stream(backend) as stream:
            assert await stream.next() is None
            for n in range(3):
                task_id = await backend.push(n)
                got = await stream.task()
                assert got is not None and got.id == task_id, (
                    f"push {n + 1} was never delivered on a poll stream opened before it"
                )

    async def test_an_open_stream_delivers_what_comes_due(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        async with Stream(backend) as stream:
            assert await stream.next() is None
            later = await backend.push("later", run_at=conveyor_suite.later(40))
            sooner = await backend.push("sooner", run_at=conveyor_suite.later(20))
            assert await stream.next() is None, "a task was delivered before its run_at"
            conveyor_suite.clock.advance(21)
            got = await stream.task()
            assert got is not None and got.id == sooner, "a task came due on an open stream"
            conveyor_suite.clock.advance(20)
            got = await stream.task()
            assert got is not None and got.id == later

    async def test_several_workers_polling_at_once(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        ids = await backend.push_many(range(12))
        streams = [Stream(backend) for _ in range(3)]
        got: list[Task[bytes]] = []
        try:
            for _ in range(12):
                items = await asyncio.gather(*(s.next() for s in streams))
                got += [t for t in items if t is not None]
                if all(t is None for t in items):
                    break
                if backend.supports(Capability.ACK):
                    for task in items:
                        if task is not None:
                            await backend.hooks.ack(task, Done())
        finally:
            for stream in streams:
                await stream.aclose()
        delivered = [t.id for t in got]
        doubled = sorted({i for i in delivered if delivered.count(i) > 1})
        assert not doubled, f"workers polling at once were handed the same task: {doubled}"
        assert set(delivered) == set(ids), f"{len(set(ids) - set(delivered))} task(s) never came"

    async def test_the_same_worker_claims_again_after_losing_its_lease(
        self, conveyor_suite: Suite
    ) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.RESUME_ABANDONED)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        task_id = await backend.push("lost once", max_attempts=3)
        who = worker(backend)
        async with Stream(backend, who) as stream:
            first = await stream.task()
            assert first is not None and first.id == task_id and first.lease_until is not None
            conveyor_suite.clock.set(first.lease_until.timestamp() + 1)
            assert await backend.resume_abandoned() == 1
            second = await stream.task()
        assert second is not None and second.id == task_id, "the resumed task was not delivered"
        assert second.attempt == 2 and second.lock_by == who.name
        assert second.lease_token != first.lease_token, "a new claim needs a new token"
        with pytest.raises(StaleLease):
            await backend.hooks.ack(first, Done())  # the same worker's lost attempt
        await backend.hooks.ack(second, Done(backend.codec.encode("second")))
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await backend.fetch_by_id(task_id)
            assert stored is not None and stored.status is Status.DONE
            assert stored.result == "second" and stored.attempt == 2

    async def test_a_reopened_store_keeps_order_and_fields(
        self, conveyor_suite: Suite, reopen: Callable[[], Backend]
    ) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        ids = [await backend.push(n, priority=n % 2, name="job", meta={"n": n}) for n in range(6)]
        await backend.aclose()
        again = reopen()
        try:
            for n, task_id in enumerate(ids):
                stored = await again.fetch_by_id(task_id)
                assert stored is not None, f"task {n} was lost by a reopen"
                assert (stored.args, stored.priority, stored.name, dict(stored.meta)) == (
                    n,
                    n % 2,
                    "job",
                    {"n": n},
                ), f"task {n} changed across a reopen"
            more = await again.push(6, priority=1)
            order = [t.id for t in await claim_all(again)]
        finally:
            await again.aclose()
        assert order == [ids[1], ids[3], ids[5], more, ids[0], ids[2], ids[4]], (
            "priority then FIFO must hold across a reopen"
        )

    async def test_a_lease_survives_a_reopen(
        self, conveyor_suite: Suite, reopen: Callable[[], Backend]
    ) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.RESUME_ABANDONED)
        need_clock(conveyor_suite)
        clock = conveyor_suite.clock
        assert clock is not None
        backend = conveyor_suite.backend
        task_id: TaskId = await backend.push("held across a restart", max_attempts=3)
        held = await claim(backend)
        assert held is not None and held.lease_until is not None
        await backend.aclose()
        again = reopen()
        try:
            assert await claim(again) is None, "a held task was handed out again after a reopen"
            assert await again.resume_abandoned() == 0, "a live lease was resumed after a reopen"
            clock.set(held.lease_until.timestamp() + 1)
            assert await again.resume_abandoned() == 1, "an expired lease was lost by a reopen"
            second = await claim(again)
            assert second is not None and second.id == task_id and second.attempt == 2
            await again.hooks.ack(second, Done())
        finally:
            await again.aclose()
