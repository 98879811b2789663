"""The required Backend trait: poll, heartbeat, middleware, close; claim order and timing."""

from __future__ import annotations

from conveyor.capability import Capability
from conveyor.status import Status
from conveyor.testing.base import SuiteTests, need, need_clock
from conveyor.testing.support import Suite, claim, claim_all, worker

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
