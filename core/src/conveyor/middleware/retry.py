"""The retry policy: turns a handler's exception into the attempt's outcome."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from conveyor.backoff import full_jitter
from conveyor.clock import SYSTEM_CLOCK, Clock, at
from conveyor.control import Abort, RetryAfter
from conveyor.middleware.base import Invocation, Next
from conveyor.outcome import Kill, Outcome, Retry

__all__ = ["RetryPolicy", "describe"]

logger = logging.getLogger("conveyor.worker")


def describe(error: BaseException) -> str:
    """The text stored as ``last_error``: the exception's type and message."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@attrs.frozen
class RetryPolicy:
    """Middleware deciding what a failed attempt becomes.

    An exception → ``Retry`` after ``full_jitter(attempt, base, max_delay)``
    seconds (the backend kills the task once it has used ``max_attempts``);
    ``Abort`` → ``Kill`` now; ``RetryAfter(d)`` → ``Retry`` in ``d`` seconds.
    The worker installs ``RetryPolicy()`` outermost unless you pass one.
    ``clock`` supplies "now" for ``run_at`` (a ``ManualClock`` in tests);
    by default the worker's clock.
    """

    base: float = 1.0
    max_delay: float = 300.0
    clock: Clock | None = None

    def __attrs_post_init__(self) -> None:
        if not (self.base > 0 and self.max_delay >= self.base):
            raise ValueError(
                f"RetryPolicy needs base > 0 and max_delay >= base,"
                f" not base={self.base!r}, max_delay={self.max_delay!r}"
            )

    async def __call__(self, invocation: Invocation, call_next: Next) -> Any:
        """Run the rest of the chain; map what it raises to an outcome."""
        try:
            return await call_next(invocation)
        except Exception as error:
            return self.outcome(error, invocation.task.attempt, self.clock or SYSTEM_CLOCK)

    def outcome(self, error: BaseException, attempt: int, clock: Clock) -> Outcome:
        """The outcome for ``error`` raised by attempt number ``attempt``."""
        if isinstance(error, Abort):
            return Kill(describe(error))
        if isinstance(error, RetryAfter):
            delay = error.delay
        else:
            delay = full_jitter(attempt, self.base, self.max_delay)
        return Retry(at(clock.time() + delay), describe(error))
