"""Finished tasks held packed in memory (see ``conveyor_json.packed``): every field and
payload reads back through reopens and compactions, and every operation still sees them."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import attrs

import conveyor
from conveyor import Done, Filter, Kill, ManualClock, Status, Task, TaskId, WorkerInfo

WORKER = WorkerInfo("w1", "default")
ODD = [b'{"a":1}', b'{ "spaced": true }', b"\x00\xffbinary", b"", b'"caf\xc3\xa9"', b"1e999"]


def packed(backend: conveyor.Backend) -> dict[str, bytes]:
    return backend.plugin.journal.state.tasks.packed(False)  # type: ignore[attr-defined, no-any-return]


async def fill(backend: conveyor.Backend) -> list[TaskId]:
    """Tasks of every kind: finished with and without results, killed, failed, held, pending;
    varied priorities, attempts and payloads. Returns the ids of the ``Done`` ones."""
    for i, data in enumerate(ODD):
        task = Task(TaskId.new(), data, priority=i - 3, max_attempts=i + 1)
        await backend.hooks.push([task])
    for i in range(30):
        await backend.push({"n": i}, priority=i % 3 - 1, queue="default" if i % 4 else "other")
    await backend.push({"meta": 1}, meta={"k": 1})
    await backend.push({"all": "done"}, queue="finished")  # a queue of finished tasks only
    done = []
    for queue in ("default", "other", "finished"):
        shared = backend.make_shared(queue)
        stream = shared.hooks.poll(WORKER)
        for i in range(20):  # the rest stays pending
            task = await anext(stream)
            if task is None:
                break
            if i % 7 == 6:
                continue  # left running
            outcome = Kill("dead") if i % 5 == 4 else Done(ODD[i % len(ODD)] if i % 2 else None)
            await backend.hooks.ack(task, outcome)
            if isinstance(outcome, Done):
                done.append(task.id)
        await stream.aclose()
        await shared.aclose()  # else the handle outlives the backend: no reopen below
    return done


async def test_finished_tasks_read_back_packed_through_reopens_and_compactions(
    tmp_path: Path,
    seen: Callable[[Task[bytes]], tuple[object, ...]],
    listed: Callable[[conveyor.Backend], Awaitable[list[tuple[object, ...]]]],
) -> None:
    path = tmp_path / "tasks.json"
    clock = ManualClock(time.time() + 60)  # past the real-time run_at of raw Tasks
    async with conveyor.open(f"json://{path}", clock=clock) as backend:
        done = await fill(backend)
        before = await listed(backend)
        metrics = [await backend.hooks.metrics(q) for q in (None, "default", "other")]
        queues = [(q.name, q.stats) for q in await backend.hooks.list_queues()]
        assert {t[3] for t in before} >= {Status.DONE, Status.KILLED, Status.PENDING}
        backend.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
        # Packed once their payloads are in the new file: the finished tasks without
        # meta, name or error (the killed ones have one).
        plain = {r[0] for r in before if r[3] is Status.DONE and not r[13] and r[9] is None}
        assert set(packed(backend)) == plain and len(plain) > 10
        assert await listed(backend) == before
    async with conveyor.open(f"json://{path}", clock=clock) as again:
        assert set(packed(again)) == plain  # packed as the snapshot is loaded
        assert len(waiting(again)) > 5  # and the pending ones
        assert await listed(again) == before
        for row in before:
            fetched = await again.hooks.fetch_by_id(row[0])
            assert fetched is not None and seen(fetched) == row
        for k in range(2):  # a packed task's references point into each new file in turn
            # A worker's line comes first in a snapshot: every task's lines move.
            await again.hooks.register_worker(WorkerInfo(f"shift{k}", "default"))
            again.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
            assert await listed(again) == before
        results = {r.task_id: r for r in await again.hooks.check_status(done)}
        assert [results[tid].result for tid in done] == [
            row[8] for tid in done for row in before if row[0] == tid
        ]
        waited = [r async for r in again.hooks.wait_for(done, 5)]
        assert sorted(r.task_id for r in waited) == sorted(done)
        assert [await again.hooks.metrics(q) for q in (None, "default", "other")] == metrics
        assert [(q.name, q.stats) for q in await again.hooks.list_queues()] == queues
        page = await again.hooks.list_all_tasks(Filter(status=Status.DONE, page_size=100))
        assert [t.id for t in page] == sorted(done)
        others = await again.hooks.list_tasks("other", Filter(status=Status.DONE, page_size=100))
        assert {t.id for t in others} == {row[0] for row in before if row[2] == "other"} & {
            t.id for t in page
        }
    # A journal tail replayed over the snapshot: tasks finished after it are packed too.
    async with conveyor.open(f"json://{path}", clock=clock) as third:
        assert await listed(third) == before


async def test_a_packed_task_updated_or_vacuumed(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    async with conveyor.open(f"json://{path}") as backend:
        tid = await backend.push({"a": 1})
        other = await backend.push({"b": 2})
        stream = backend.hooks.poll(WORKER)
        for _ in range(2):
            task = await anext(stream)
            assert task is not None
            await backend.hooks.ack(task, Done(b'"ok"'))
        await stream.aclose()
    async with conveyor.open(f"json://{path}") as again:
        assert tid in packed(again)
        stored = await again.hooks.fetch_by_id(tid)
        assert stored is not None
        await again.hooks.update(attrs.evolve(stored, priority=9, name="renamed"))
        assert tid not in packed(again)  # a name does not pack: a full entry again
        page = await again.hooks.list_all_tasks(Filter(page_size=10))
        assert [(t.id, t.priority, t.name) for t in page] == sorted(
            [(tid, 9, "renamed"), (other, 0, None)]
        )
        assert len(await again.hooks.list_all_tasks(Filter(status=Status.DONE))) == 2
        assert await again.hooks.vacuum() == 2
        assert await again.hooks.fetch_by_id(other) is None
        assert await again.hooks.list_all_tasks(Filter(page_size=10)) == []


def waiting(backend: conveyor.Backend) -> dict[str, bytes]:
    return backend.plugin.journal.state.tasks.packed(True)  # type: ignore[attr-defined, no-any-return]


async def claim_all(backend: conveyor.Backend) -> list[bytes]:
    stream = backend.hooks.poll(WORKER)
    got = []
    while (task := await anext(stream)) is not None:
        got.append(task.args)
        assert task.status is Status.RUNNING and task.lock_by == WORKER.name
    await stream.aclose()
    return got


async def test_packed_waiting_tasks_are_claimed_in_order_and_updated(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    clock = ManualClock(time.time() + 60)
    async with conveyor.open(f"json://{path}", clock=clock) as backend:
        last = await backend.push({"n": "last"}, priority=7)
        for i in range(12):
            await backend.push({"n": i}, priority=i % 3)
        backend.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
        for i in range(12, 15):  # and a journal after the snapshot
            await backend.push({"n": i}, priority=i % 3)
    # Highest priority first, then in push order; the update below moves one to the back.
    order = [json.dumps({"n": i}, separators=(",", ":")).encode() for i in range(15)]
    order.sort(key=lambda data: -(json.loads(data)["n"] % 3))
    async with conveyor.open(f"json://{path}", clock=clock) as again:
        assert len(waiting(again)) == 16  # packed as the snapshot and journal are loaded
        stored = await again.hooks.fetch_by_id(last)
        assert stored is not None and stored.priority == 7 and stored.status is Status.PENDING
        await again.hooks.update(attrs.evolve(stored, priority=-1))
    async with conveyor.open(f"json://{path}", clock=clock) as third:
        # Packed again, with the place the update gave it: its old heap entry is stale.
        assert len(waiting(third)) == 16
        assert await claim_all(third) == [*order, b'{"n":"last"}']
        assert waiting(third) == {}  # every task is held now
        assert {t.status for t in await third.hooks.list_all_tasks(Filter(page_size=20))} == {
            Status.RUNNING
        }


async def test_a_run_from_the_snapshot_merges_with_the_heaps(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    clock = ManualClock(time.time() + 60)
    async with conveyor.open(f"json://{path}", clock=clock) as backend:
        for i in range(10):
            await backend.push({"a": i})
        await backend.push({"later": 1}, delay=timedelta(hours=1))
        backend.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
        await backend.push({"b": 0})  # after the snapshot: in the heap
        await backend.push({"high": 1}, priority=5)
    async with conveyor.open(f"json://{path}", clock=clock) as again:
        run = again.plugin.journal.state.queues["default"].run  # type: ignore[attr-defined]
        assert run is not None and len(run) == 11  # one column entry a task, no tuples
        got = await claim_all(again)
        assert got == [b'{"high":1}', *(b'{"a":%d}' % i for i in range(10)), b'{"b":0}']
        assert await again.hooks.metrics(None) == await again.hooks.metrics("default")
        clock.advance(2 * 3600)
        assert await claim_all(again) == [b'{"later":1}']
