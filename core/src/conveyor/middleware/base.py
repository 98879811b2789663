"""The shape of worker middleware, which backends may also contribute (``middleware`` hook)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from conveyor.context import TaskContext
from conveyor.task import Task

__all__ = ["Invocation", "Next", "Middleware"]


@attrs.frozen(slots=True)
class Invocation:
    """One run of a handler: the claimed task (compact), its decoded args and its context."""

    task: Task[bytes]
    args: Any
    context: TaskContext


Next = Callable[[Invocation], Awaitable[Any]]
"""Runs the rest of the chain (further middleware, then the handler) and returns its value."""


class Middleware(Protocol):
    """Wraps the run of a handler.

    It may return what ``call_next`` returned, another value, or an ``Outcome``
    (``conveyor.outcome``) to decide the task's fate itself; an exception that
    leaves the chain is the attempt's failure.
    """

    async def __call__(self, invocation: Invocation, call_next: Next) -> Any:
        """Run around ``call_next(invocation)``."""
        ...
