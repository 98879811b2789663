"""A task a worker finished is stored as (claimed, result) and built when read: every
reader must see the record ``conveyor.rules.settle`` makes, and only what it makes."""

from __future__ import annotations

import conveyor
from conveyor import Done, Filter, ManualClock, Status, rules
from conveyor.testing.support import claim


def _memory() -> conveyor.Backend:
    return conveyor.open("memory", clock=ManualClock(1_700_000_000.0))


async def test_every_reader_sees_the_settled_record_of_a_done_task() -> None:
    backend = _memory()
    task_id = await backend.push({"n": 1}, name="job", meta={"k": "v"})
    await backend.push("still pending")
    held = await claim(backend)
    assert held is not None and held.id == task_id
    result = backend.codec.encode("ok")
    expected = rules.settle(held, held, Done(result))
    await backend.hooks.ack(held, Done(result))
    hooks = backend.hooks
    assert await hooks.fetch_by_id(task_id) == expected
    assert await hooks.list_tasks(backend.queue, Filter(status=Status.DONE)) == [expected]
    assert [t.id for t in await hooks.list_all_tasks(Filter(name="job"))] == [task_id]
    counts = {row.title: row.value for row in await backend.metrics()}
    assert (counts["DONE_JOBS"], counts["PENDING_JOBS"], counts["TOTAL_JOBS"]) == ("1", "1", "2")
    assert [r.result for r in await backend.check_status([task_id])] == ["ok"]
    assert (await backend.wait_one(task_id, timeout=5)).result == "ok"
    assert await backend.vacuum() == 1
    assert await backend.fetch_by_id(task_id) is None
    assert len(await backend.list_tasks()) == 1


async def test_a_second_ack_of_a_done_task_is_stale() -> None:
    backend = _memory()
    await backend.push("x")
    held = await claim(backend)
    assert held is not None
    await backend.hooks.ack(held, Done(None))
    try:
        await backend.hooks.ack(held, Done(None))
    except conveyor.StaleLease as exc:
        assert "done" in str(exc).lower()
    else:
        raise AssertionError("a second ack of a finished task was accepted")
