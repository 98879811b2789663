"""What ``reschedule`` does: a task made ``PENDING`` to run at a given time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.errors import TaskNotFound
from conveyor.lease import check_lease
from conveyor.rules.lease import HELD_STATES
from conveyor.rules.record import build
from conveyor.status import InvalidTransition, Status
from conveyor.task import Task

__all__ = ["reschedule"]


def reschedule(stored: Task[Any] | None, given: Task[Any], run_at: datetime) -> Task[Any]:
    """The stored task after ``reschedule(given, run_at)``: ``PENDING`` at ``run_at``,
    lease cleared.

    A ``PENDING`` task only moves in time; a ``FAILED`` one keeps its attempts;
    a held one (``RUNNING``/``QUEUED``) gets its current attempt back, as
    ``Release`` does. ``TaskNotFound`` if ``stored`` is ``None``; ``StaleLease``
    if ``given`` carries a lease token ``stored`` no longer holds;
    ``InvalidTransition`` for a finished task (``DONE``/``KILLED``).
    """
    if stored is None:
        raise TaskNotFound(f"no task {given.id} to reschedule")
    if given.lease_token is not None:
        check_lease(stored, given)
    if stored.status.is_final:
        raise InvalidTransition(stored.status, Status.PENDING)
    attempt = max(0, stored.attempt - 1) if stored.status in HELD_STATES else stored.attempt
    s = stored
    return build(
        s.id, s.args, s.queue, Status.PENDING, attempt, s.max_attempts, run_at, s.priority,
        s.result, s.last_error, None, None, None, s.meta, s.name,
    )  # fmt: skip
