"""The task record every backend stores and every worker runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import attrs

from conveyor.status import Status
from conveyor.task_id import TaskId

__all__ = ["Task", "TaskResult", "DEFAULT_MAX_ATTEMPTS", "utc", "utcnow"]

A = TypeVar("A")
R = TypeVar("R")

DEFAULT_MAX_ATTEMPTS = 5
_EMPTY: Mapping[str, Any] = {}


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused rather than guessed at."""
    if value.tzinfo is None:
        raise ValueError(
            f"{value!r} has no time zone; pass an aware datetime such as datetime.now(timezone.utc)"
        )
    return value.astimezone(UTC)


@attrs.frozen(slots=True)
class Task(Generic[A]):
    """One task.

    Inside backends ``args`` and ``result`` hold the codec's compact form
    (``bytes``); the ``Backend`` facade hands users tasks whose ``args`` and
    ``result`` are decoded. ``attempt`` counts claims: it is 0 until a worker
    first takes the task and never exceeds ``max_attempts``. ``lease_token`` and
    ``lease_until`` are set while a worker (``lock_by``) holds the task; an ack
    that carries another token is refused (see ``conveyor.lease``).
    ``name`` is the registered task name a router runs it by (``None`` for a
    task pushed to a single-handler worker); every backend stores it.
    """

    id: TaskId
    args: A
    queue: str = "default"
    status: Status = Status.PENDING
    attempt: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    run_at: datetime = attrs.field(factory=utcnow)
    priority: int = 0
    result: Any = None
    last_error: str | None = None
    lock_by: str | None = None
    lease_token: str | None = None
    lease_until: datetime | None = None
    meta: Mapping[str, Any] = _EMPTY
    name: str | None = None

    @property
    def created_at(self) -> datetime:
        """When the task was made, read from its id."""
        return datetime.fromtimestamp(self.id.timestamp, UTC)

    def with_args(self, args: R, result: Any = None) -> Task[R]:
        """The same task carrying other ``args`` (and ``result``), e.g. decoded ones."""
        return Task(
            self.id,
            args,
            self.queue,
            self.status,
            self.attempt,
            self.max_attempts,
            self.run_at,
            self.priority,
            result,
            self.last_error,
            self.lock_by,
            self.lease_token,
            self.lease_until,
            self.meta,
            self.name,
        )


@attrs.frozen(slots=True)
class TaskResult(Generic[R]):
    """The outcome of a finished task, as ``wait_for``/``check_status`` report it."""

    task_id: TaskId
    status: Status
    result: R | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task ended ``DONE``."""
        return self.status is Status.DONE

    def unwrap(self) -> R | None:
        """The result of a ``DONE`` task; raise ``RuntimeError`` with its error otherwise."""
        if self.status is not Status.DONE:
            raise RuntimeError(f"task {self.task_id} ended {self.status.value}: {self.error}")
        return self.result
