"""ConfigExt, MakeShared, and reopening a durable store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.outcome import Done, Kill
from conveyor.status import Status
from conveyor.testing.base import SuiteTests, need
from conveyor.testing.support import Suite, claim, claim_all

__all__ = ["TestGetQueue", "TestMakeShared", "TestReopen"]


class TestGetQueue(SuiteTests):
    """get_queue names the queue pushes go to and poll serves."""

    capability = Capability.GET_QUEUE

    async def test_pushes_go_to_get_queue(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        name = backend.get_queue()
        assert isinstance(name, str) and name, "get_queue must return a queue name"
        assert backend.queue == name
        need(conveyor_suite, Capability.PUSH)
        await backend.push("here")
        task = await claim(backend)
        assert task is not None and task.queue == name


class TestMakeShared(SuiteTests):
    """make_shared gives a backend on the same store that does not see other queues."""

    capability = Capability.MAKE_SHARED

    async def test_shared_backends_keep_their_queues_apart(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        other = backend.make_shared("conformance-shared")
        try:
            assert other.queue == "conformance-shared"
            mine = await backend.push("mine")
            theirs = await other.push("theirs")
            assert [t.id for t in await claim_all(other)] == [theirs]
            assert [t.id for t in await claim_all(backend)] == [mine]
        finally:
            await other.aclose()

    async def test_one_store(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        other = backend.make_shared("conformance-shared")
        try:
            theirs = await other.push("theirs")
            seen = await backend.fetch_by_id(theirs)
            assert seen is not None and seen.queue == "conformance-shared"
        finally:
            await other.aclose()
        # closing a shared backend leaves the store open for the others
        again = await backend.push("after")
        assert await backend.fetch_by_id(again) is not None


class TestReopen(SuiteTests):
    """Everything acknowledged is still there after reopening the store."""

    @pytest.fixture
    def reopen(self, conveyor_reopen: Callable[[], Backend] | None) -> Callable[[], Backend]:
        if conveyor_reopen is None:
            pytest.skip("no conveyor_reopen fixture: the backend is not reopenable")
        return conveyor_reopen

    async def test_acknowledged_state_survives(
        self, conveyor_suite: Suite, reopen: Callable[[], Backend]
    ) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        ids = await backend.push_many([{"n": 1}, {"n": 2}, {"n": 3}], priority=2)
        done = await claim(backend)
        killed = await claim(backend)
        assert done is not None and killed is not None
        await backend.hooks.ack(done, Done(backend.codec.encode("result")))
        await backend.hooks.ack(killed, Kill("why"))
        await backend.aclose()
        again = reopen()
        try:
            first, second, third = [await again.fetch_by_id(i) for i in ids]
            assert first is not None and first.status is Status.DONE
            assert first.result == "result"
            assert second is not None and second.status is Status.KILLED
            assert second.last_error == "why"
            assert third is not None and third.status is Status.PENDING
            assert (third.args, third.priority) == ({"n": 3}, 2)
            task = await claim(again)
            assert task is not None and task.id == ids[2]
            await again.hooks.ack(task, Done())
        finally:
            await again.aclose()
