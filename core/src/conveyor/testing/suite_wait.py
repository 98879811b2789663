"""WaitForCompletion: wait_for and check_status report each finished task once.

Which test holds each promise of ``hookspecs.wait_for`` / ``check_status``:

- each id reported once as it reaches DONE or KILLED, then the stream ends:
  ``test_already_finished``, ``test_finishing_while_waiting`` (a retry in between is not an end);
  however it got there (cancelled by update): ``test_a_task_cancelled_by_update_is_reported``
- TimeoutError after timeout, TaskNotFound for an unknown id: ``test_timeout_and_unknown_id``
- must not busy-poll: not measurable without timing; the backend's own tests hold it
- check_status: those finished now, once each, without waiting, FAILED is not finished:
  ``test_only_finished_tasks_once_each``, ``test_a_failed_task_is_not_finished``
"""

from __future__ import annotations

import asyncio

import attrs
import pytest

from conveyor.capability import Capability
from conveyor.errors import TaskNotFound
from conveyor.outcome import Done, Kill, Retry
from conveyor.status import Status
from conveyor.task import Task, TaskResult
from conveyor.task_id import TaskId
from conveyor.testing.base import SuiteTests, need
from conveyor.testing.support import HANG_GUARD, Suite, claim, guard

__all__ = ["TestCheckStatus", "TestWaitFor"]


async def _two_claimed(suite: Suite) -> tuple[Task[bytes], Task[bytes]]:
    need(suite, Capability.PUSH, Capability.ACK)
    ids = await suite.backend.push_many(["ok", "bad"])
    first = await claim(suite.backend)
    second = await claim(suite.backend)
    assert first is not None and second is not None
    assert [first.id, second.id] == ids
    return first, second


async def _finish(suite: Suite, ok: Task[bytes], bad: Task[bytes]) -> None:
    hooks, codec = suite.backend.hooks, suite.backend.codec
    await hooks.ack(ok, Done(codec.encode({"sum": 3})))
    await hooks.ack(bad, Kill("gave up"))


def _check(results: list[TaskResult[object]], ok: Task[bytes], bad: Task[bytes]) -> None:
    by_id = {r.task_id: r for r in results}
    assert len(results) == 2 == len(by_id), f"each task must be reported once: {results}"
    assert by_id[ok.id].status is Status.DONE and by_id[ok.id].result == {"sum": 3}
    assert by_id[bad.id].status is Status.KILLED and by_id[bad.id].error == "gave up"


class TestWaitFor(SuiteTests):
    """wait_for yields each task's outcome exactly once, as it finishes."""

    capability = Capability.WAIT_FOR

    async def test_already_finished(self, conveyor_suite: Suite) -> None:
        ok, bad = await _two_claimed(conveyor_suite)
        await _finish(conveyor_suite, ok, bad)
        backend = conveyor_suite.backend
        results = [r async for r in backend.wait_for([ok.id, bad.id], timeout=HANG_GUARD)]
        _check(results, ok, bad)

    async def test_finishing_while_waiting(self, conveyor_suite: Suite) -> None:
        ok, bad = await _two_claimed(conveyor_suite)
        backend = conveyor_suite.backend

        async def collect() -> list[TaskResult[object]]:
            return [r async for r in backend.wait_for([ok.id, bad.id], timeout=HANG_GUARD)]

        waiting = asyncio.ensure_future(collect())
        await asyncio.sleep(0)  # let the waiter start before anything finishes
        await backend.hooks.ack(ok, Done(backend.codec.encode({"sum": 3})))
        await backend.hooks.ack(bad, Retry(conveyor_suite.now(), "once more"))
        again = await claim(backend)
        assert again is not None and again.id == bad.id
        await backend.hooks.ack(again, Kill("gave up"))
        _check(await guard(waiting, "wait_for"), ok, bad)

    async def test_timeout_and_unknown_id(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        with pytest.raises(TaskNotFound):
            async for _ in backend.wait_for([TaskId.new()], timeout=HANG_GUARD):
                pass
        need(conveyor_suite, Capability.PUSH)
        task_id = await backend.push("never run")
        with pytest.raises(TimeoutError):
            await backend.wait_one(task_id, timeout=0.05)

    async def test_a_task_cancelled_by_update_is_reported(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.UPDATE, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        task_id = await backend.push("cancel me")

        async def collect() -> list[TaskResult[object]]:
            return [r async for r in backend.wait_for([task_id], timeout=HANG_GUARD)]

        waiting = asyncio.ensure_future(collect())
        await asyncio.sleep(0)
        stored = await backend.fetch_by_id(task_id)
        assert stored is not None
        await backend.update(attrs.evolve(stored, status=Status.KILLED, last_error="cancelled"))
        results = await guard(waiting, "wait_for")
        assert [(r.task_id, r.status) for r in results] == [(task_id, Status.KILLED)]


class TestCheckStatus(SuiteTests):
    """check_status reports finished tasks only, once each, without waiting."""

    capability = Capability.CHECK_STATUS

    async def test_only_finished_tasks_once_each(self, conveyor_suite: Suite) -> None:
        ok, bad = await _two_claimed(conveyor_suite)
        backend = conveyor_suite.backend
        assert await backend.check_status([ok.id, bad.id]) == []
        await _finish(conveyor_suite, ok, bad)
        _check(await backend.check_status([ok.id, bad.id, TaskId.new()]), ok, bad)

    async def test_a_failed_task_is_not_finished(self, conveyor_suite: Suite) -> None:
        ok, bad = await _two_claimed(conveyor_suite)
        backend = conveyor_suite.backend
        await backend.hooks.ack(bad, Retry(conveyor_suite.later(3600), "later"))
        await backend.hooks.ack(ok, Done(backend.codec.encode({"sum": 3})))
        results = await backend.check_status([ok.id, bad.id])
        assert [(r.task_id, r.status) for r in results] == [(ok.id, Status.DONE)], (
            "a FAILED task (to run again) is not finished"
        )
