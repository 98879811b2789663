"""Which task a claim takes first: the ordering every backend keeps.

Higher ``priority`` first; within a priority the earliest ``run_at``, then the
lowest id. A task's place in line is the moment it became due, so a released
or abandoned task (``run_at`` unchanged) goes back near the head, a retry
waits at its retry time, and a task resumed by id (``run_at`` = now) joins the
back of those already due.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.status import Status
from conveyor.task import Task
from conveyor.task_id import TaskId

__all__ = ["order_key", "is_ready", "READY_STATES"]

READY_STATES = frozenset({Status.PENDING, Status.FAILED})
"""States a claim may take a task from, once its ``run_at`` has come."""


def order_key(task: Task[Any]) -> tuple[int, datetime, TaskId]:
    """The sort key of ``task`` among ready tasks: smallest is claimed first."""
    return (-task.priority, task.run_at, task.id)


def is_ready(task: Task[Any], now: datetime) -> bool:
    """Whether a claim at ``now`` may take ``task``: ``PENDING``/``FAILED`` and due."""
    return task.status in READY_STATES and task.run_at <= now
