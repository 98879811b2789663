"""Pages, statistics and results built from the in-memory index."""

from __future__ import annotations

from collections.abc import Iterable

from conveyor import Filter, Statistic, Status, Task, TaskId, TaskResult
from conveyor.rules.authoring import status_statistics
from conveyor_json.state import Entry

__all__ = ["page_of", "metrics_of", "result_of"]


def page_of(entries: Iterable[Entry], filter: Filter) -> list[Task[bytes]]:
    """One page of ``entries`` matching ``filter``, oldest (by id) first."""
    if filter.status is not None:
        entries = (e for e in entries if e.status is filter.status)
    if filter.name is not None:
        entries = (e for e in entries if e.name == filter.name)
    ordered = sorted(entries, key=lambda e: e.id)
    return [e.task() for e in ordered[filter.offset : filter.offset + filter.limit]]


def metrics_of(entries: Iterable[Entry]) -> list[Statistic]:
    """Per-status counts, the total and the success rate, as memory reports them."""
    counts = dict.fromkeys(Status, 0)
    for entry in entries:
        counts[entry.status] += 1
    return status_statistics(counts)


def result_of(entry: Entry) -> TaskResult[bytes]:
    """What ``wait_for``/``check_status`` report for a finished task."""
    error = entry.error if entry.status is Status.KILLED else None
    return TaskResult(TaskId.parse(entry.id), entry.status, entry.result, error)
