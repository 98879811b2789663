"""What an ack does to the stored task: the outcome of one attempt, under its lease."""

from __future__ import annotations

from typing import Any

from conveyor.errors import StaleLease
from conveyor.lease import check_lease
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.rules.record import build
from conveyor.status import Status
from conveyor.task import Task

__all__ = ["settle"]


def settle(stored: Task[Any] | None, claimed: Task[Any], outcome: Outcome) -> Task[Any]:
    """The stored task after ``ack(claimed, outcome)``, lease cleared.

    ``Done``: ``DONE`` with the result. ``Retry``: ``FAILED`` at the retry's
    ``run_at`` with ``last_error``, or ``KILLED`` once ``attempt >= max_attempts``
    (``run_at`` unchanged). ``Kill``: ``KILLED`` with ``last_error``.
    ``Release``: ``PENDING``, this attempt given back, ``run_at`` unchanged.
    ``StaleLease`` unless ``stored`` still holds ``claimed``'s token, including
    when ``stored`` is ``None`` (the task is gone: finished and vacuumed).
    """
    if stored is None:
        raise StaleLease(f"task {claimed.id} no longer exists; the ack was refused")
    check_lease(stored, claimed)
    s = stored
    status, attempt, run_at, result, error = Status.KILLED, s.attempt, s.run_at, s.result, None
    if isinstance(outcome, Done):
        status, result, error = Status.DONE, outcome.result, s.last_error
    elif isinstance(outcome, Retry):
        error = outcome.error
        if s.attempt < s.max_attempts:
            status, run_at = Status.FAILED, outcome.run_at
    elif isinstance(outcome, Kill):
        error = outcome.error
    elif isinstance(outcome, Release):
        status, attempt, error = Status.PENDING, max(0, s.attempt - 1), s.last_error
    else:
        raise TypeError(f"unknown outcome {outcome!r}; expected Done, Retry, Kill or Release")
    return build(
        s.id, s.args, s.queue, status, attempt, s.max_attempts, run_at, s.priority, result,
        error, None, None, None, s.meta, s.name,
    )  # fmt: skip
