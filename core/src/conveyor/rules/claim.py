"""What a claim does to a ready task: ``RUNNING``, attempt counted, a fresh lease."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.lease import new_token
from conveyor.rules.lease import lease_delta
from conveyor.rules.order import READY_STATES
from conveyor.rules.record import build
from conveyor.status import InvalidTransition, Status
from conveyor.task import Task

__all__ = ["claim"]


def claim(
    task: Task[Any],
    worker: str,
    *,
    now: datetime,
    lease_seconds: float,
    token: str | None = None,
) -> Task[Any]:
    """``task`` claimed by ``worker`` at ``now``: ``RUNNING``, ``attempt + 1``,
    ``lock_by=worker``, a fresh lease token (or ``token``) until ``now + lease_seconds``.

    ``InvalidTransition`` unless ``task`` is ``PENDING`` or ``FAILED``; whether it
    is due (``is_ready``) and first in line (``order_key``) is the caller's
    query. The result is what the backend stores and ``poll`` yields.
    """
    if task.status not in READY_STATES:
        raise InvalidTransition(task.status, Status.RUNNING)
    until = now + lease_delta(lease_seconds)
    return build(
        task.id, task.args, task.queue, Status.RUNNING, task.attempt + 1, task.max_attempts,
        task.run_at, task.priority, task.result, task.last_error, worker,
        new_token() if token is None else token, until, task.meta, task.name,
    )  # fmt: skip
