"""What ``resume_abandoned`` does to a task whose lease expired (its worker presumed dead)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.rules.lease import is_expired
from conveyor.rules.record import build
from conveyor.status import Status
from conveyor.task import Task

__all__ = ["abandon", "lost_error"]


def lost_error(task: Task[Any]) -> str:
    """The ``last_error`` of an abandoned task: which worker was lost, on which attempt."""
    return f"worker {task.lock_by!r} stopped renewing its lease (attempt {task.attempt})"


def abandon(task: Task[Any], now: datetime) -> Task[Any] | None:
    """``task`` put back at ``now`` if its lease has expired, else ``None``.

    The lost attempt stays counted: ``PENDING`` with ``run_at`` unchanged (its
    old place in line) while attempts are left, ``KILLED`` at ``max_attempts``;
    ``last_error`` says the worker was lost; the lease is cleared.
    """
    if not is_expired(task, now):
        return None
    status = Status.KILLED if task.attempt >= task.max_attempts else Status.PENDING
    return build(
        task.id, task.args, task.queue, status, task.attempt, task.max_attempts, task.run_at,
        task.priority, task.result, lost_error(task), None, None, None, task.meta, task.name,
    )  # fmt: skip
