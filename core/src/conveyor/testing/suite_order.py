"""Where a task stands in line: ``hookspecs.poll``'s order, checked by the order produced.

Which test holds each promise of ``poll``'s "Order" paragraph (and the places in
line that ``ack``, ``resume_abandoned``, ``resume_by_id`` and ``update`` promise):

- within a priority, earliest ``run_at`` first, then lowest id:
  ``test_earliest_run_at_first_within_a_priority``
- a released task keeps its place (``run_at`` unchanged): ``test_a_released_task_keeps_its_place``
- an abandoned task keeps its place: ``test_an_abandoned_task_keeps_its_place``
- a retry takes its place at its retry ``run_at``: ``test_a_retry_takes_its_place_at_its_run_at``
- a task resumed by id joins at the back of the tasks already due:
  ``test_a_task_resumed_by_id_joins_the_back``
- update: a waiting task takes its place by its new priority and run_at:
  ``test_update_moves_a_waiting_task_in_line``
"""

from __future__ import annotations

import attrs

from conveyor.capability import Capability
from conveyor.outcome import Kill, Release, Retry
from conveyor.task import Task
from conveyor.task_id import TaskId
from conveyor.testing.base import SuiteTests, need, need_clock
from conveyor.testing.support import Suite, claim, claim_all

__all__ = ["TestOrder"]


def _ids(tasks: list[Task[bytes]]) -> list[TaskId]:
    return [t.id for t in tasks]


class TestOrder(SuiteTests):
    """Delivery order by priority, then run_at, then id, for every way a task re-enters line."""

    row = "order"

    async def test_earliest_run_at_first_within_a_priority(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        late = await backend.push("late", run_at=conveyor_suite.later(20))
        early = await backend.push("early", run_at=conveyor_suite.later(10))
        now_a = await backend.push("now a")
        now_b = await backend.push("now b")
        conveyor_suite.clock.advance(30)
        got = _ids(await claim_all(backend))
        assert got == [now_a, now_b, early, late], (
            "within a priority: earliest run_at first, then lowest id"
        )

    async def test_a_released_task_keeps_its_place(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        first, second, third = await backend.push_many(["a", "b", "c"])
        held = await claim(backend)
        assert held is not None and held.id == first
        if conveyor_suite.clock is not None:
            conveyor_suite.clock.advance(5)  # a release must not restamp run_at with the new now
        await backend.hooks.ack(held, Release())
        got = _ids(await claim_all(backend))
        assert got == [first, second, third], "a released task goes back to its old place"
        if backend.supports(Capability.FETCH_BY_ID):
            stored = await backend.fetch_by_id(first)
            assert stored is not None and abs(stored.run_at - held.run_at).total_seconds() < 1e-3

    async def test_an_abandoned_task_keeps_its_place(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.RESUME_ABANDONED)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        first, second = await backend.push_many(["a", "b"], max_attempts=3)
        held = await claim(backend)
        assert held is not None and held.id == first and held.lease_until is not None
        conveyor_suite.clock.set(held.lease_until.timestamp() + 1)
        assert await backend.resume_abandoned() == 1
        got = _ids(await claim_all(backend))
        assert got == [first, second], "an abandoned task goes back to its old place"

    async def test_a_retry_takes_its_place_at_its_run_at(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        before = await backend.push("due at +5", run_at=conveyor_suite.later(5))
        retried = await backend.push("retried to +2", max_attempts=3)
        held = await claim(backend)
        assert held is not None and held.id == retried
        await backend.hooks.ack(held, Retry(conveyor_suite.later(2), "again"))
        after = await backend.push("due at +8", run_at=conveyor_suite.later(8))
        conveyor_suite.clock.advance(10)
        got = _ids(await claim_all(backend))
        assert got == [retried, before, after], "a retry takes its place at its retry run_at"

    async def test_a_task_resumed_by_id_joins_the_back(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.RESUME_BY_ID)
        need_clock(conveyor_suite)
        assert conveyor_suite.clock is not None
        backend = conveyor_suite.backend
        resumed, waiting = await backend.push_many(["resumed", "waiting"])
        held = await claim(backend)
        assert held is not None and held.id == resumed
        await backend.hooks.ack(held, Kill("stop"))
        conveyor_suite.clock.advance(5)
        assert await backend.resume_by_id(resumed) is True
        conveyor_suite.clock.advance(1)
        later = await backend.push("pushed after the resume")
        got = _ids(await claim_all(backend))
        assert got == [waiting, resumed, later], (
            "a task resumed by id runs at now: behind what was already due, ahead of later pushes"
        )

    async def test_update_moves_a_waiting_task_in_line(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.UPDATE, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        first, second, third = await backend.push_many(["a", "b", "c"])
        stored = await backend.fetch_by_id(third)
        assert stored is not None
        await backend.update(attrs.evolve(stored, priority=5))
        stored = await backend.fetch_by_id(first)
        assert stored is not None
        await backend.update(attrs.evolve(stored, run_at=conveyor_suite.later(3600)))
        got = _ids(await claim_all(backend))
        assert got == [third, second], "update must move a waiting task by priority and run_at"
