"""Pages, statistics and results built from the in-memory index."""

from __future__ import annotations

from collections.abc import Iterable

from conveyor import Filter, QueueInfo, RunningWorker, Statistic, Status, Task, TaskId, TaskResult
from conveyor.rules.authoring import status_statistics
from conveyor_json.packed import Tasks
from conveyor_json.state import Entry, State, from_us

__all__ = ["page_of", "metrics_of", "queues_of", "result_of", "workers_of"]


def page_of(tasks: Tasks, filter: Filter, queue: str | None = None) -> list[Task[bytes]]:
    """One page of the tasks (of ``queue``) matching ``filter``, oldest (by id) first.

    Chosen from ``(id, status, name)`` rows: only the page's tasks are unpacked.
    """
    rows: Iterable[tuple[str, Status, str | None]] = tasks.summary(queue)
    if filter.status is not None:
        rows = (r for r in rows if r[1] is filter.status)
    if filter.name is not None:
        rows = (r for r in rows if r[2] == filter.name)
    ids = sorted(r[0] for r in rows)
    return [tasks[tid].task() for tid in ids[filter.offset : filter.offset + filter.limit]]


def metrics_of(tasks: Tasks, queue: str | None = None) -> list[Statistic]:
    """Per-status counts, the total and the success rate, as memory reports them."""
    counts = dict.fromkeys(Status, 0)
    for _, status, _ in tasks.summary(queue):
        counts[status] += 1
    return status_statistics(counts)


def result_of(entry: Entry) -> TaskResult[bytes]:
    """What ``wait_for``/``check_status`` report for a finished task."""
    error = entry.error if entry.status is Status.KILLED else None
    return TaskResult(TaskId.parse(entry.id), entry.status, entry.result, error)


def queues_of(state: State) -> list[QueueInfo]:
    """Every queue that has tasks or workers, with its statistics and workers."""
    names = state.tasks.queue_names()
    names.update(w.info.queue for w in state.workers.values())
    infos = []
    for name in sorted(names):
        workers = sorted(n for n, w in state.workers.items() if w.info.queue == name)
        stats = metrics_of(state.tasks, name)
        infos.append(QueueInfo(name, stats, workers, []))
    return infos


def workers_of(state: State, queue: str | None) -> list[RunningWorker]:
    """The registered workers (of ``queue``, or all), by name."""
    return [
        RunningWorker(
            name, w.info.queue, "json", w.info.started_at, from_us(w.last_us), w.info.layers
        )
        for name, w in sorted(state.workers.items())
        if queue is None or w.info.queue == queue
    ]
