"""Per-task time limit: the handler is cancelled when it runs too long."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs

from conveyor.middleware.base import Invocation, Next

__all__ = ["Timeout", "TaskTimeout"]


class TaskTimeout(TimeoutError):
    """The handler ran past its time limit and was cancelled."""


@attrs.frozen
class Timeout:
    """Cancel the handler after ``seconds``; the attempt fails with ``TaskTimeout``.

    An ``async`` handler is cancelled at its next ``await``. A plain function
    runs in a thread, which Python cannot stop safely: the attempt fails at
    the deadline (and is retried as usual), the thread runs on, and whatever
    it returns is dropped, never acked. Its worker slot stays taken until the
    thread returns, so no more handlers run at once than ``concurrency``.
    """

    seconds: float

    def __attrs_post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"Timeout needs more than 0 seconds, not {self.seconds!r}")

    async def __call__(self, invocation: Invocation, call_next: Next) -> Any:
        """Run the rest of the chain with a deadline."""
        try:
            async with asyncio.timeout(self.seconds):
                return await call_next(invocation)
        except TimeoutError as exc:
            if isinstance(exc, TaskTimeout):
                raise
            raise TaskTimeout(
                f"task {invocation.task.id} ran longer than {self.seconds:g} s and was cancelled"
            ) from None
