"""The packed tasks' hash table (``conveyor_json.table``): every task reads back through
churn, growth and removals, through the backend and, for the cases only the table can
reach (a cluster that wraps around the index's end), on the table itself."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from conveyor_json import TornTailWarning
from conveyor_json.table import ROW, Table

import conveyor
from conveyor import Done, Filter, Kill, ManualClock, Status, TaskId, WorkerInfo

WORKER = WorkerInfo("w1", "default")


def row(n: int) -> bytes:
    """A row telling which add made it (status byte 2: a waiting task's)."""
    return bytes([2]) + n.to_bytes(ROW - 1, "little")


def homed(table: Table, home: int, count: int) -> list[str]:
    """``count`` fresh ids whose probe starts at slot ``home`` of ``table`` as it is now."""
    mask = table.capacity - 1
    found: list[str] = []
    while len(found) < count:
        tid = str(TaskId.new())
        if hash(tid) & mask == home:
            found.append(tid)
    return found


def check(table: Table, model: dict[str, bytes], gone: set[str]) -> None:
    assert len(table) == len(model)
    for tid, want in model.items():
        pos = table.find(tid)
        assert pos >= 0, f"{tid} lost"
        assert table.tid(pos) == tid and table.row(pos) == want
    for tid in gone - model.keys():
        assert table.find(tid) == -1
    assert sorted(t for _, t, _ in table.items()) == sorted(model)


def test_a_removal_shifts_back_a_cluster_that_wraps_around_the_end() -> None:
    table = Table()
    assert table.capacity == 8
    # Three ids whose probe starts at the last slot (7, 0, 1), then one starting at 0
    # (pushed on to 2): removing the first must move each of the others back a slot.
    last = homed(table, 7, 3)
    first = homed(table, 0, 1)
    model = {}
    for n, tid in enumerate(last + first):
        table.add(tid, row(n))
        model[tid] = row(n)
    assert table.capacity == 8  # 4 of 8: no growth in the way
    for gone in (last[0], first[0], last[2]):
        assert table.pop(gone) == model.pop(gone)
        check(table, model, {*last, *first})
    # A cluster from slot 6 across the end, cut in its middle.
    more = homed(table, 6, 2) + homed(table, 7, 1)
    for n, tid in enumerate(more):
        table.add(tid, row(10 + n))
        model[tid] = row(10 + n)
    assert table.capacity == 8
    assert table.pop(more[1]) == model.pop(more[1])
    check(table, model, {*last, *first, *more})


def test_growth_while_adding_keeps_the_entry_being_added() -> None:
    table = Table()
    model = {}
    for n in range(5):  # 5 of 8 is the most before growing (70%)
        tid = str(TaskId.new())
        table.add(tid, row(n))
        model[tid] = row(n)
    assert table.capacity == 8
    tid = str(TaskId.new())
    pos = table.add(tid, row(5))  # the sixth grows the index, then goes into the new one
    model[tid] = row(5)
    assert table.capacity == 16
    assert table.find(tid) == pos
    check(table, model, set())


def test_every_entry_reads_back_through_random_churn() -> None:
    rng = random.Random(16)
    table = Table()
    model: dict[str, bytes] = {}
    positions: dict[str, int] = {}
    everyone: set[str] = set()
    capacities = set()
    for step in range(6_000):
        roll = rng.random()
        if model and roll < 0.35:
            tid = rng.choice(sorted(model))
            assert table.pop(tid) == model.pop(tid)
            positions.pop(tid)
        elif model and roll < 0.45:  # a new row for a task held already: same position
            tid = rng.choice(sorted(model))
            assert table.add(tid, row(step)) == positions[tid]
            model[tid] = row(step)
        else:
            tid = str(TaskId.new())
            everyone.add(tid)
            positions[tid] = table.add(tid, row(step))
            model[tid] = row(step)
        capacities.add(table.capacity)
        if step % 500 == 0:
            check(table, model, everyone)
    check(table, model, everyone)
    assert {table.find(tid) for tid in model} == set(positions.values())
    assert len(capacities) >= 6  # grown several times on the way
    assert table.pop(str(TaskId.new())) is None and table.find("short") == -1


def test_rows_added_in_bulk_are_indexed_when_next_looked_in() -> None:
    table = Table()
    early = str(TaskId.new())
    table.add(early, row(0))
    ids = [str(TaskId.new()) for _ in range(50)]
    start = table.extend("".join(ids).encode(), b"".join(row(n + 1) for n in range(50)))
    model = {early: row(0)} | {tid: row(n + 1) for n, tid in enumerate(ids)}
    assert [table.tid(start + n) for n in range(50)] == ids  # positions in the given order
    check(table, model, set())
    # The same id twice in bulk (a hand-made snapshot): the later row stands.
    again = table.extend(ids[3].encode(), row(99))
    model[ids[3]] = row(99)
    check(table, model, set())
    assert table.find(ids[3]) == again
    # Dropping rows by status leaves the others, indexed again.
    finished = ids[10:20]
    for n, tid in enumerate(finished):
        table.add(tid, bytes([0]) + row(n)[1:])
    assert table.drop(frozenset({0})) == len(finished)
    for tid in finished:
        del model[tid]
    check(table, model, set(finished))


def fields(task: conveyor.Task[bytes]) -> tuple[object, ...]:
    return (task.status, task.args, task.result, task.priority, task.attempt, task.queue)


async def everything(backend: conveyor.Backend) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    for number in range(1, 100):
        page = await backend.hooks.list_all_tasks(Filter(page=number, page_size=1000))
        found.update((t.id, fields(t)) for t in page)
        if len(page) < 1000:
            return found
    raise AssertionError("more tasks than the test made")


async def test_every_task_reads_back_through_churn_reopens_and_compactions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.json"
    url = f"json://{path}?fsync=false"
    clock = ManualClock(time.time() + 60)
    order: list[str] = []

    async def claim(backend: conveyor.Backend, count: int, step: int) -> None:
        stream = backend.hooks.poll(WORKER)
        for i in range(count):
            task = await anext(stream)
            assert task is not None
            assert task.id == order.pop(0)  # one priority: claimed in push order
            if i % 9 != 8:  # the others are left running
                outcome = Kill("no") if i % 7 == 3 else Done(b"%d" % (step + i) if i % 2 else None)
                await backend.hooks.ack(task, outcome)
        await stream.aclose()

    async def verify(backend: conveyor.Backend, want: dict[str, tuple[object, ...]]) -> None:
        assert await everything(backend) == want
        for tid in list(want)[::37]:
            fetched = await backend.hooks.fetch_by_id(tid)
            assert fetched is not None and fields(fetched) == want[tid]

    async with conveyor.open(url, clock=clock) as backend:
        order += await backend.push_many({"n": i} for i in range(2_000))
        await claim(backend, 700, 0)
        backend.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
        want = await everything(backend)
    for turn in range(3):
        async with conveyor.open(url, clock=clock) as again:  # the snapshot, loaded in bulk
            await verify(again, want)
            await claim(again, 400, 1_000 * turn)  # from the run of the snapshot
            order += await again.push_many({"r": turn, "n": i} for i in range(600))
            await claim(again, 300, 1_000 * turn + 500)  # the run, then the heap
            want = await everything(again)
            if turn == 1:
                assert await again.hooks.vacuum() > 0
                want = {k: v for k, v in want.items() if v[0] not in (Status.DONE, Status.KILLED)}
            await verify(again, want)
            again.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
            await verify(again, want)
    async with conveyor.open(url, clock=clock) as last:
        await verify(last, want)
        stream = last.hooks.poll(WORKER)
        rest = []
        while (task := await anext(stream)) is not None:
            rest.append(task.id)
        await stream.aclose()
        assert rest == order and len(rest) == 1_000


async def test_a_claim_cut_as_a_torn_tail_leaves_its_task_claimable(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    clock = ManualClock(time.time() + 60)
    async with conveyor.open(f"json://{path}", clock=clock) as backend:
        ids = await backend.push_many({"n": i} for i in range(5))
        backend.plugin.journal.compact(keep_final=True)  # type: ignore[attr-defined]
    # A whole record that cannot be applied ends the file: cut as a torn tail. Applying
    # it took the task out of the snapshot's run; it must still come first.
    bad = {"op": "set", "id": ids[0], "s": "R", "a": "one", "at": 1}
    with path.open("ab") as out:
        out.write(json.dumps(bad).encode() + b"\n")
    with pytest.warns(TornTailWarning):
        async with conveyor.open(f"json://{path}", clock=clock) as again:
            stream = again.hooks.poll(WORKER)
            got = [(await anext(stream)) for _ in ids]
            assert [t.id for t in got if t is not None] == ids
            assert await anext(stream) is None
            await stream.aclose()
