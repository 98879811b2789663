"""Listings and metrics checked by value: the promises mutation testing found untested.

Each test names the mutants of ``conveyor_memory.backend`` it kills (see docs/mutation.md).
"""

from __future__ import annotations

import conveyor
from conveyor import Backend, ManualClock, Status
from conveyor.outcome import Done, Kill, Retry
from conveyor.testing.support import claim, worker


def _memory() -> Backend:
    return conveyor.open("memory://?queue=queue-a", clock=ManualClock(1_700_000_000.0))


def _fresh(text: str) -> str:
    """``text`` as a new string object: equal, not identical (``is`` must not pass for ``==``)."""
    return "".join(list(text))


async def test_a_name_filter_keeps_only_that_name_and_no_filter_keeps_all() -> None:
    # Kills `filter.name is None` (inverted), `t.name > / < / is filter.name`.
    backend = _memory()
    report = await backend.push("r", name="report")
    await backend.push("m", name="mail")
    await backend.push("n")
    other = backend.make_shared("queue-b")
    await other.push("r2", name="report")
    wanted = _fresh("report")
    assert [t.id for t in await backend.list_tasks(name=wanted)] == [report]
    assert len(await backend.list_tasks()) == 3, "no name filter must list every task"
    assert len(await backend.list_all_tasks(name=wanted)) == 2
    assert [t.name for t in await backend.list_tasks(name="mail")] == ["mail"]


def _counts(rows: list[conveyor.Statistic]) -> dict[str, str]:
    return {row.title: row.value for row in rows}


async def test_metrics_count_the_tasks_of_their_queue() -> None:
    # Kills `dict.fromkeys(Status, 1)`, `counts[...] += 0`, `task.queue < / is queue`.
    backend = _memory()
    for n in range(3):
        await backend.push(n)
    other = backend.make_shared("queue-b")
    for n in range(2):
        await other.push(n)
    task = await claim(backend)
    assert task is not None
    await backend.hooks.ack(task, Done(None))
    a = _counts(await backend.metrics(_fresh("queue-a")))
    assert (a["PENDING_JOBS"], a["DONE_JOBS"], a["RUNNING_JOBS"], a["TOTAL_JOBS"]) == (
        "2", "1", "0", "3",
    )  # fmt: skip
    assert _counts(await backend.metrics(_fresh("queue-b")))["TOTAL_JOBS"] == "2"
    everything = _counts(await backend.metrics(None))
    assert (everything["PENDING_JOBS"], everything["TOTAL_JOBS"]) == ("4", "5")
    assert everything["SUCCESS_RATE"] == "100.0"
    assert Status.DONE.value.upper() + "_JOBS" in everything


async def test_list_queues_and_list_workers_show_each_queue_its_own_workers() -> None:
    # Kills `r["info"].queue > / < / <= name` in list_queues, `info.queue is queue` in
    # list_workers, and the queue of a worker with no task missing from list_queues.
    backend = _memory()
    await backend.push("x")
    first, second = worker(backend, _fresh("queue-a")), worker(backend, _fresh("queue-b"))
    await backend.register_worker(first)
    await backend.register_worker(second)
    queues = {q.name: q.workers for q in await backend.list_queues()}
    assert queues == {"queue-a": [first.name], "queue-b": [second.name]}
    assert [w.id for w in await backend.list_workers(_fresh("queue-b"))] == [second.name]
    assert [w.id for w in await backend.list_workers(_fresh("queue-a"))] == [first.name]
    assert len(await backend.list_tasks(queue=_fresh("queue-a"))) == 1  # `t.queue is queue`
    assert {w.id for w in await backend.list_workers(None)} == {first.name, second.name}


async def test_a_result_carries_an_error_only_when_the_task_was_killed() -> None:
    # Kills `task.status <= Status.KILLED` in _result: a task that failed once and
    # then succeeded reports no error, though its record keeps last_error.
    backend = _memory()
    done_id, killed_id = await backend.push("d"), await backend.push("k")
    for _ in range(2):
        task = await claim(backend)
        assert task is not None
        await backend.hooks.ack(task, Retry(backend.now(), "boom"))
    again = [await claim(backend), await claim(backend)]
    by_id = {t.id: t for t in again if t is not None}
    await backend.hooks.ack(by_id[done_id], Done(None))
    await backend.hooks.ack(by_id[killed_id], Kill("fatal"))
    results = {r.task_id: r for r in await backend.check_status([done_id, killed_id])}
    assert (results[done_id].status, results[done_id].error) == (Status.DONE, None)
    assert (results[killed_id].status, results[killed_id].error) == (Status.KILLED, "fatal")
