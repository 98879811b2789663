"""What a handler (and middleware) may know about the task it runs and the worker running it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from conveyor.task import utcnow
from conveyor.task_id import TaskId

__all__ = ["TaskContext", "WorkerInfo"]


@attrs.frozen(slots=True)
class WorkerInfo:
    """A worker as backends see it: the argument of ``poll``, ``heartbeat``, ``register_worker``.

    ``name`` is unique per running worker and is what leases record in ``lock_by``.
    """

    name: str
    queue: str
    concurrency: int = 1
    started_at: datetime = attrs.field(factory=utcnow)
    layers: str = ""


@attrs.frozen(slots=True)
class TaskContext:
    """The second argument of a handler that declares one.

    ``name`` is the task's registered name (``Task.name``), ``None`` for a
    task pushed without one.
    """

    id: TaskId
    attempt: int
    max_attempts: int
    queue: str
    meta: Mapping[str, Any]
    worker: str
    name: str | None = None
