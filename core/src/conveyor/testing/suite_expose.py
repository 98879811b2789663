"""Expose: task listings with pages and status filters, queues, workers, metrics.

Which test holds each promise of the listing and metrics hookspecs:

- list_tasks: one queue, oldest first, offset/limit pages:
  ``test_pages_cover_every_task_once_oldest_first``; status filter: ``test_filter_by_status``;
  name filter, both must match: ``test_filter_by_name_and_status``
- list_all_tasks: every queue, as list_tasks pages: ``test_every_queue_paged``,
  ``test_filter_by_status``, ``test_filter_by_name_and_status``
- list_queues: every queue holding tasks or workers, with its statistics:
  ``test_queues_with_tasks_are_listed``, ``test_a_queue_with_only_workers_is_listed``,
  ``test_queue_statistics_count_its_tasks``
- list_workers: by queue or all: ``test_registered_workers_are_listed``; heartbeats refresh:
  ``test_heartbeat_refreshes``
- metrics: well-formed rows: ``test_rows_are_well_formed``; values of a queue and of the store,
  checked against the pushes and acks that made them: ``test_counts_follow_pushes_and_acks``
  (rows titled as ``conveyor.expose.status_statistics`` titles them)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pytest

from conveyor.capability import Capability
from conveyor.expose import Filter, Statistic, StatType, status_statistics
from conveyor.outcome import Done
from conveyor.status import Status
from conveyor.task_id import TaskId
from conveyor.testing.base import SuiteTests, need
from conveyor.testing.support import Suite, claim, worker

__all__ = ["TestListAllTasks", "TestListQueues", "TestListTasks", "TestListWorkers", "TestMetrics"]

OTHER = "conformance-listing"


def check_statistics(rows: Sequence[Statistic]) -> None:
    """Every row is a ``Statistic`` whose value reads as its ``stat_type`` says."""
    for row in rows:
        assert isinstance(row, Statistic), f"{row!r} is not a conveyor.Statistic"
        assert isinstance(row.title, str) and row.title.strip(), f"{row!r} has no title"
        assert isinstance(row.stat_type, StatType), f"{row!r}: stat_type is not a StatType"
        assert isinstance(row.value, str), f"{row!r}: value must be a string"
        assert row.priority is None or isinstance(row.priority, int)
        if row.stat_type is StatType.TIMESTAMP:
            try:
                datetime.fromisoformat(row.value)
            except ValueError:
                float(row.value)  # epoch seconds are acceptable too
        else:
            number = float(row.value)
            assert math.isfinite(number), f"{row!r}: value is not finite"
            if row.stat_type is StatType.NUMBER:
                assert float(row.value).is_integer(), f"{row!r}: a Number must be whole"
            if row.stat_type is StatType.PERCENTAGE:
                assert 0 <= number <= 100, f"{row!r}: a percentage is between 0 and 100"


STANDARD_TITLES = frozenset(row.title for row in status_statistics({}))


def counts(rows: Sequence[Statistic]) -> dict[str, int]:
    """The standard count rows (``PENDING_JOBS``, ..., ``TOTAL_JOBS``) by title."""
    return {
        r.title: int(float(r.value))
        for r in rows
        if r.title in STANDARD_TITLES and r.stat_type is StatType.NUMBER
    }


async def _named(suite: Suite) -> list[TaskId]:
    """Tasks a, b (named "a"), c (named "b"), d (named "a", claimed): ids in push order."""
    need(suite, Capability.PUSH)
    backend = suite.backend
    held = await backend.push("d", name="a", priority=9)
    ids = [
        await backend.push("a", name="a"),
        await backend.push("b", name="a"),
        await backend.push("c", name="b"),
    ]
    claimed = await claim(backend)
    assert claimed is not None and claimed.id == held
    return [held, *ids]


async def _pages(suite: Suite, status: Status | None, size: int) -> list[list[TaskId]]:
    pages = []
    for page in range(1, 50):
        got = await suite.backend.list_tasks(None, Filter(status=status, page=page, page_size=size))
        pages.append([t.id for t in got])
        if not got:
            return pages
    raise AssertionError("list_tasks never returned an empty page")


class TestListTasks(SuiteTests):
    """list_tasks pages through one queue, oldest first, filtered by status."""

    capability = Capability.LIST_TASKS

    async def test_pages_cover_every_task_once_oldest_first(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        ids = await backend.push_many(range(7))
        await backend.push("not this queue", queue=OTHER)
        pages = await _pages(conveyor_suite, None, 3)
        assert [len(p) for p in pages] == [3, 3, 1, 0], f"page sizes {[len(p) for p in pages]}"
        assert [i for p in pages for i in p] == ids, "pages must list each task once, oldest first"
        listed = await backend.list_tasks(page_size=10)
        assert [t.args for t in listed] == list(range(7)), "listed tasks carry their args"

    async def test_filter_by_status(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        ids = await backend.push_many(["done", "running", "p1", "p2", "p3"])
        done = await claim(backend)
        running = await claim(backend)
        assert done is not None and running is not None
        await backend.hooks.ack(done, Done())
        assert [p for p in await _pages(conveyor_suite, Status.DONE, 2) if p] == [[ids[0]]]
        assert [p for p in await _pages(conveyor_suite, Status.RUNNING, 2) if p] == [[ids[1]]]
        pending = await _pages(conveyor_suite, Status.PENDING, 2)
        assert pending == [ids[2:4], ids[4:], []]
        assert await backend.list_tasks(status=Status.KILLED) == []

    async def test_filter_by_name_and_status(self, conveyor_suite: Suite) -> None:
        held, a, b, c = await _named(conveyor_suite)
        backend = conveyor_suite.backend
        named_a = [t.id for t in await backend.list_tasks(name="a", page_size=100)]
        assert named_a == [held, a, b], "filter.name must match Task.name exactly"
        both = await backend.list_tasks(name="a", status=Status.PENDING, page_size=100)
        assert [t.id for t in both] == [a, b], "filter.status and filter.name must both match"
        second = await backend.list_tasks(name="a", status=Status.PENDING, page=2, page_size=1)
        assert [t.id for t in second] == [b], "the page is offset within the matching tasks"
        assert [t.id for t in await backend.list_tasks(name="b", page_size=100)] == [c]
        assert await backend.list_tasks(name="nobody", page_size=100) == []


class TestListAllTasks(SuiteTests):
    """list_all_tasks pages through every queue."""

    capability = Capability.LIST_ALL_TASKS

    async def test_every_queue_paged(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        ours = [await backend.push(i, queue=backend.queue if i % 2 else OTHER) for i in range(5)]
        seen: list[TaskId] = []
        for page in range(1, 100):
            got = await backend.list_all_tasks(page=page, page_size=2)
            assert len(got) <= 2, "a page held more than page_size tasks"
            if not got:
                break
            seen += [t.id for t in got]
        assert len(seen) == len(set(seen)), "a task was listed on two pages"
        assert [i for i in seen if i in ours] == ours, "every queue's tasks, oldest first"

    async def test_filter_by_status(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        await backend.push("elsewhere", queue=OTHER)
        task_id = await backend.push("run")
        task = await claim(backend)
        assert task is not None and task.id == task_id
        running = await backend.list_all_tasks(status=Status.RUNNING, page_size=1000)
        assert task_id in [t.id for t in running]
        assert all(t.status is Status.RUNNING for t in running)

    async def test_filter_by_name_and_status(self, conveyor_suite: Suite) -> None:
        held, a, b, _ = await _named(conveyor_suite)
        backend = conveyor_suite.backend
        elsewhere = await backend.push("e", name="a", queue=OTHER)
        got = await backend.list_all_tasks(name="a", status=Status.PENDING, page_size=100)
        assert [t.id for t in got] == [a, b, elsewhere], "both filters, every queue, oldest first"
        running = await backend.list_all_tasks(name="a", status=Status.RUNNING, page_size=100)
        assert [t.id for t in running] == [held]


class TestListQueues(SuiteTests):
    """list_queues names every queue holding tasks, with well-formed statistics."""

    capability = Capability.LIST_QUEUES

    async def test_queues_with_tasks_are_listed(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        await backend.push("a")
        await backend.push("b", queue=OTHER)
        queues = {q.name: q for q in await backend.list_queues()}
        assert {backend.queue, OTHER} <= set(queues), f"listed queues: {sorted(queues)}"
        for info in queues.values():
            check_statistics(info.stats)
            assert all(isinstance(w, str) for w in info.workers)
            assert all(isinstance(n, int) and n >= 0 for n in info.activity)

    async def test_a_queue_with_only_workers_is_listed(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.REGISTER_WORKER)
        backend = conveyor_suite.backend
        who = worker(backend, queue="conformance-workers-only")
        await backend.register_worker(who)
        queues = {q.name: q for q in await backend.list_queues()}
        assert "conformance-workers-only" in queues, "a queue that holds workers is listed"
        assert who.name in queues["conformance-workers-only"].workers

    async def test_queue_statistics_count_its_tasks(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        await backend.push_many(range(3))
        await backend.push("b", queue=OTHER)
        queues = {q.name: q for q in await backend.list_queues()}
        ours, theirs = counts(queues[backend.queue].stats), counts(queues[OTHER].stats)
        if not ours:
            pytest.skip("the queue statistics use none of status_statistics' titles")
        assert ours.get("TOTAL_JOBS", 3) == 3 and ours.get("PENDING_JOBS", 3) == 3, ours
        assert theirs.get("TOTAL_JOBS", 1) == 1 and theirs.get("PENDING_JOBS", 1) == 1, theirs


class TestListWorkers(SuiteTests):
    """list_workers shows registered workers by queue; heartbeats move last_heartbeat on."""

    capability = Capability.LIST_WORKERS

    async def test_registered_workers_are_listed(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.REGISTER_WORKER)
        backend = conveyor_suite.backend
        ours = worker(backend)
        theirs = worker(backend, queue=OTHER)
        await backend.register_worker(ours)
        await backend.register_worker(theirs)
        everyone = {w.id: w for w in await backend.list_workers()}
        assert {ours.name, theirs.name} <= set(everyone)
        in_queue = {w.id for w in await backend.list_workers(backend.queue)}
        assert ours.name in in_queue and theirs.name not in in_queue
        row = everyone[ours.name]
        assert row.queue == backend.queue
        assert row.last_heartbeat >= row.started_at or row.started_at == ours.started_at

    async def test_heartbeat_refreshes(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.REGISTER_WORKER)
        backend = conveyor_suite.backend
        who = worker(backend)
        await backend.register_worker(who)
        before = {w.id: w for w in await backend.list_workers()}[who.name].last_heartbeat
        if conveyor_suite.clock is not None:
            conveyor_suite.clock.advance(5)
        await backend.heartbeat(who)
        after = {w.id: w for w in await backend.list_workers()}[who.name].last_heartbeat
        if conveyor_suite.clock is not None:
            assert after > before, "a heartbeat did not refresh last_heartbeat"
        else:
            assert after >= before


class TestMetrics(SuiteTests):
    """metrics returns well-formed Statistic rows for the store and for a queue."""

    capability = Capability.METRICS

    async def test_rows_are_well_formed(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        if backend.supports(Capability.PUSH):
            await backend.push_many(range(3))
            await backend.push("x", queue=OTHER)
        for queue in (None, backend.queue, OTHER):
            rows = await backend.metrics(queue)
            assert rows, f"metrics({queue!r}) returned no rows"
            check_statistics(rows)

    async def test_counts_follow_pushes_and_acks(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH, Capability.ACK)
        backend = conveyor_suite.backend
        before = {q: counts(await backend.metrics(q)) for q in (None, backend.queue, OTHER)}
        if not before[backend.queue]:
            pytest.skip("metrics rows use none of status_statistics' titles: values not checked")
        await backend.push_many(range(4))
        await backend.push("elsewhere", queue=OTHER)
        done = await claim(backend)
        running = await claim(backend)
        assert done is not None and running is not None
        await backend.hooks.ack(done, Done())
        moved = {"PENDING_JOBS": 2, "RUNNING_JOBS": 1, "DONE_JOBS": 1, "TOTAL_JOBS": 4}
        expected = {
            None: {**moved, "PENDING_JOBS": 3, "TOTAL_JOBS": 5},
            backend.queue: moved,
            OTHER: {"PENDING_JOBS": 1, "TOTAL_JOBS": 1},
        }
        for queue, change in expected.items():
            after = counts(await backend.metrics(queue))
            for title, delta in change.items():
                if title in after:
                    grew = after[title] - before[queue].get(title, 0)
                    assert grew == delta, (
                        f"metrics({queue!r}) {title} grew by {grew};"
                        f" the pushes and acks made {delta}"
                    )
        fresh = not any(before[backend.queue].get(k) for k in ("DONE_JOBS", "KILLED_JOBS"))
        rows = await backend.metrics(backend.queue)
        rate = next((r for r in rows if r.title == "SUCCESS_RATE"), None)
        if rate is not None and fresh:
            assert float(rate.value) == 100.0, "1 done of 1 finished is a 100% success rate"
