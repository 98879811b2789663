"""What ``resume_by_id`` does: a failed, killed or held task made to run again now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.rules.lease import HELD_STATES
from conveyor.rules.record import build
from conveyor.status import Status
from conveyor.task import Task

__all__ = ["resume", "RESUMABLE"]

RESUMABLE = frozenset({Status.FAILED, Status.KILLED, Status.RUNNING, Status.QUEUED})
"""States ``resume_by_id`` acts on; it returns ``False`` for the others."""


def resume(task: Task[Any], now: datetime) -> Task[Any] | None:
    """``task`` resumed at ``now``, or ``None`` if it is not resumable (``DONE``, ``PENDING``).

    ``PENDING`` with ``run_at = now`` (the back of the tasks already due), lease
    cleared. Attempts restart from 0 for a killed task (a deliberate second
    chance); a failed task keeps its count; a held one gets its current
    attempt back, as ``Release`` does, so no later claim exceeds ``max_attempts``.
    """
    if task.status not in RESUMABLE:
        return None
    if task.status is Status.KILLED:
        attempt = 0
    elif task.status in HELD_STATES:
        attempt = max(0, task.attempt - 1)
    else:
        attempt = task.attempt
    return build(
        task.id, task.args, task.queue, Status.PENDING, attempt, task.max_attempts, now,
        task.priority, task.result, task.last_error, None, None, None, task.meta, task.name,
    )  # fmt: skip
