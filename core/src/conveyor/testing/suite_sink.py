"""TaskSink and WeakTaskSink: ids, stored fields, all-or-nothing bulk pushes.

Which test holds each promise of ``hookspecs.push`` / ``push_weak``:

- new PENDING tasks, ids returned in order: ``test_ids_are_distinct_and_in_order``
- every field stored as given, name and meta included: ``test_the_stored_task_keeps_every_field``,
  ``test_bulk_push_keeps_per_task_options``, ``test_push_weak_stores_a_task``
- all or none (a payload that cannot be encoded stores nothing):
  ``test_bulk_push_is_all_or_nothing_on_a_codec_error``; across a crash: not checkable from
  inside one process, the backend's own tests hold it
- a push to another queue lands there: ``test_push_to_another_queue``
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.capability import Capability
from conveyor.errors import PayloadError
from conveyor.status import Status
from conveyor.testing.base import SuiteTests, need
from conveyor.testing.support import Suite, claim, claim_all

__all__ = ["TestPush", "TestPushWeak"]

_CLOSE = timedelta(milliseconds=1)  # stores may keep run_at to the millisecond


class TestPush(SuiteTests):
    """push returns distinct ids; the stored task keeps every field; bulk is all or none."""

    capability = Capability.PUSH

    async def test_ids_are_distinct_and_in_order(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        ids = [await backend.push(i) for i in range(10)]
        ids += await backend.push_many(range(10, 30))
        assert len(set(ids)) == len(ids), "push returned a repeated id"
        delivered = await claim_all(backend)
        assert [backend.codec.decode(t.args) for t in delivered] == list(range(30))
        assert [t.id for t in delivered] == ids

    async def test_the_stored_task_keeps_every_field(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        run_at = conveyor_suite.later(120)
        args = {"to": "ann@example.com", "n": [1, 2.5, None], "ü": "✓"}
        task_id = await backend.push(
            args, run_at=run_at, priority=3, max_attempts=7, meta={"trace": "abc"}, name="mail"
        )
        task = await backend.fetch_by_id(task_id)
        assert task is not None, "a pushed task cannot be fetched by its id"
        assert task.id == task_id
        assert task.args == args
        assert task.status is Status.PENDING
        assert task.attempt == 0
        assert task.max_attempts == 7
        assert task.priority == 3
        assert abs(task.run_at - run_at) < _CLOSE, f"run_at {task.run_at} != {run_at}"
        assert task.queue == backend.queue
        assert dict(task.meta) == {"trace": "abc"}
        assert task.name == "mail", "push must store Task.name"
        assert task.lease_token is None and task.lock_by is None and task.lease_until is None
        assert task.result is None and task.last_error is None

    async def test_push_to_another_queue(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        task_id = await backend.push("elsewhere", queue="conformance-other")
        task = await backend.fetch_by_id(task_id)
        assert task is not None and task.queue == "conformance-other"
        assert await claim(backend) is None, "a task of another queue was delivered"

    async def test_bulk_push_is_all_or_nothing_on_a_codec_error(
        self, conveyor_suite: Suite
    ) -> None:
        backend = conveyor_suite.backend
        with pytest.raises(PayloadError):
            await backend.push_many([{"good": 1}, object()])
        assert await claim(backend) is None, "a bulk push that failed stored part of its tasks"
        if backend.supports(Capability.LIST_TASKS):
            assert await backend.list_tasks() == []

    async def test_bulk_push_keeps_per_task_options(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.FETCH_BY_ID)
        backend = conveyor_suite.backend
        ids = await backend.push_many(["a", "b"], priority=2, max_attempts=3)
        assert await backend.push_many([]) == []
        for task_id, args in zip(ids, ["a", "b"], strict=True):
            task = await backend.fetch_by_id(task_id)
            assert task is not None and task.args == args
            assert (task.priority, task.max_attempts) == (2, 3)


class TestPushWeak(SuiteTests):
    """push_weak stores like push."""

    capability = Capability.PUSH_WEAK

    async def test_push_weak_stores_a_task(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        task_id = await backend.push_weak([1, "two"], priority=1, name="weak", meta={"m": 1})
        task = await claim(backend)
        assert task is not None and task.id == task_id
        assert backend.codec.decode(task.args) == [1, "two"]
        assert (task.priority, task.name, dict(task.meta)) == (1, "weak", {"m": 1})
