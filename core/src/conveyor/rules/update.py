"""What ``update`` may change in a stored task, and in which states."""

from __future__ import annotations

from typing import Any

from conveyor.errors import TaskNotFound
from conveyor.rules.lease import HELD_STATES
from conveyor.rules.record import build
from conveyor.status import InvalidTransition
from conveyor.task import Task

__all__ = ["update", "UPDATABLE", "KEPT"]

UPDATABLE = frozenset(
    ("args", "priority", "run_at", "max_attempts", "meta", "name", "result", "last_error", "status")
)
"""Fields an update takes from the task it is given."""

KEPT = frozenset(("id", "queue", "attempt", "lock_by", "lease_token", "lease_until"))
"""Fields an update always keeps from the store, whatever the given task carries."""


def update(stored: Task[Any] | None, given: Task[Any]) -> Task[Any]:
    """The stored task after ``update(given)``.

    ``UPDATABLE`` fields come from ``given``, ``KEPT`` ones from ``stored``, so an
    update can neither forge nor break a claim. ``TaskNotFound`` if ``stored`` is
    ``None``; ``InvalidTransition`` for a status change ``Status.can_become``
    refuses or one entering or leaving ``RUNNING``/``QUEUED``; ``ValueError`` for
    ``max_attempts`` below 1 or below the stored ``attempt``.
    """
    if stored is None:
        raise TaskNotFound(f"no task {given.id} to update")
    old, new = stored.status, given.status
    if new is not old:
        held = old in HELD_STATES or new in HELD_STATES
        if held or not old.can_become(new):
            error = InvalidTransition(old, new)
            if held and old.can_become(new):
                error.args = (
                    f"update cannot move a task from {old.value} to {new.value}: only a claim"
                    " enters and only an ack, reschedule or resume leaves Running/Queued",
                )
            raise error
    if type(given.max_attempts) is not int or given.max_attempts < max(1, stored.attempt):
        raise ValueError(
            f"max_attempts must be a whole number of at least 1 and at least the task's"
            f" {stored.attempt} attempt(s) so far, not {given.max_attempts!r}"
        )
    s, g = stored, given
    return build(
        s.id, g.args, s.queue, new, s.attempt, g.max_attempts, g.run_at, g.priority, g.result,
        g.last_error, s.lock_by, s.lease_token, s.lease_until, g.meta, g.name,
    )  # fmt: skip
