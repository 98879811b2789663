"""Leases on the record: who holds a task, whether the hold is still good, heartbeats.

A claim records ``lock_by``, a fresh ``lease_token`` and ``lease_until``. A
lease has expired once ``now >= lease_until``; a heartbeat extends only a
lease that has not (an expired one stays expired until ``resume_abandoned``
takes the task back; until then an ack carrying its token is still accepted).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from conveyor.lease import check_lease, new_token
from conveyor.rules.record import build
from conveyor.status import Status
from conveyor.task import Task

__all__ = [
    "HELD_STATES", "check_lease", "new_token", "is_held", "is_expired", "extend", "lease_delta",
]  # fmt: skip

HELD_STATES = frozenset({Status.RUNNING, Status.QUEUED})
"""States in which a worker holds the task under a lease."""


_DELTAS: dict[float, timedelta] = {}


def lease_delta(lease_seconds: float) -> timedelta:
    """``timedelta(seconds=lease_seconds)``, made once per value: claims and heartbeats
    add it to "now" for every task, and a backend has one or two lease lengths."""
    delta = _DELTAS.get(lease_seconds)
    if delta is None:
        delta = timedelta(seconds=lease_seconds)
        if len(_DELTAS) < 64:  # bounded, whatever a caller passes
            _DELTAS[lease_seconds] = delta
    return delta


def is_held(task: Task[Any]) -> bool:
    """Whether a worker holds ``task`` (``RUNNING``/``QUEUED`` with a lease)."""
    return task.status in HELD_STATES and task.lease_token is not None


def is_expired(task: Task[Any], now: datetime) -> bool:
    """Whether ``task`` is held under a lease whose deadline has passed at ``now``."""
    return is_held(task) and task.lease_until is not None and now >= task.lease_until


def extend(task: Task[Any], worker: str, *, now: datetime, lease_seconds: float) -> Task[Any]:
    """``task`` after a heartbeat of ``worker`` at ``now``: its lease moved to
    ``now + lease_seconds`` if ``worker`` holds it and the lease has not expired;
    otherwise ``task`` itself, unchanged."""
    if task.lock_by != worker or not is_held(task) or is_expired(task, now):
        return task
    until = now + lease_delta(lease_seconds)
    return build(
        task.id, task.args, task.queue, task.status, task.attempt, task.max_attempts,
        task.run_at, task.priority, task.result, task.last_error, task.lock_by,
        task.lease_token, until, task.meta, task.name,
    )  # fmt: skip
