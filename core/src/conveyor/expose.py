"""The listing and metrics value types (apalis' ``expose`` module)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

import attrs

from conveyor.status import Status

__all__ = [
    "Filter",
    "QueueInfo",
    "RunningWorker",
    "Statistic",
    "StatType",
    "MAX_PAGE_SIZE",
    "status_statistics",
]

MAX_PAGE_SIZE = 1000


def _page(_: object, __: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"page must be a whole number from 1 up (pages start at 1), not {value!r}")


def _page_size(_: object, __: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, not {value!r}")


def _status(value: Status | str | None) -> Status | None:
    return None if value is None else Status.parse(value)


@attrs.frozen(slots=True)
class Filter:
    """Which tasks a listing returns: an optional status and task ``name``, a 1-based
    page, a page size. ``name`` matches ``Task.name`` exactly."""

    status: Status | None = attrs.field(default=None, converter=_status)
    page: int = attrs.field(default=1, validator=_page)
    page_size: int = attrs.field(default=10, validator=_page_size)
    name: str | None = None

    @property
    def offset(self) -> int:
        """How many matching tasks come before this page."""
        return (self.page - 1) * self.page_size

    @property
    def limit(self) -> int:
        """The most tasks this page holds."""
        return self.page_size


class StatType(enum.StrEnum):
    """How a ``Statistic``'s value string is to be read and shown."""

    TIMESTAMP = "Timestamp"
    NUMBER = "Number"
    DECIMAL = "Decimal"
    PERCENTAGE = "Percentage"


@attrs.frozen(slots=True)
class Statistic:
    """One metrics row; ``priority`` orders rows for display (lower first)."""

    title: str
    stat_type: StatType
    value: str
    priority: int | None = None


@attrs.frozen(slots=True)
class QueueInfo:
    """A queue with its statistics, worker names and daily activity (newest last)."""

    name: str
    stats: list[Statistic] = attrs.field(factory=list)
    workers: list[str] = attrs.field(factory=list)
    activity: list[int] = attrs.field(factory=list)


@attrs.frozen(slots=True)
class RunningWorker:
    """A registered worker as listings show it."""

    id: str
    queue: str
    backend: str
    started_at: datetime
    last_heartbeat: datetime
    layers: str = ""


def status_statistics(counts: Mapping[Status, int]) -> list[Statistic]:
    """The standard metrics rows from per-status task counts.

    ``<STATUS>_JOBS`` for each status, ``TOTAL_JOBS`` and ``SUCCESS_RATE``
    (done out of finished), so every backend reports the same titles.
    """
    by_status = {status: counts.get(status, 0) for status in Status}
    rows = [
        Statistic(f"{status.value.upper()}_JOBS", StatType.NUMBER, str(n), i + 1)
        for i, (status, n) in enumerate(by_status.items())
    ]
    rows.append(Statistic("TOTAL_JOBS", StatType.NUMBER, str(sum(by_status.values())), 7))
    finished = by_status[Status.DONE] + by_status[Status.KILLED]
    rate = 100.0 * by_status[Status.DONE] / finished if finished else 0.0
    rows.append(Statistic("SUCCESS_RATE", StatType.PERCENTAGE, f"{rate:.1f}", 8))
    return rows
