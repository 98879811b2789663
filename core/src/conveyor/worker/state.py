"""What one run of a worker reads (``Settings``) and what the worker shares with it (``Live``).

The lanes and the heartbeat are handed these two objects; they never see the
``Worker`` itself, so the imports of this package go one way only.
"""

from __future__ import annotations

import asyncio
import logging

import attrs

from conveyor.clock import Clock
from conveyor.context import WorkerInfo
from conveyor.events import Error, Event, Listener, WorkerState, deliver
from conveyor.middleware.base import Middleware
from conveyor.middleware.retry import RetryPolicy, describe
from conveyor.poll_strategy import PollStrategy
from conveyor.worker.handler import HandlerSpec
from conveyor.worker.routes import Routes

__all__ = ["Settings", "Live"]

logger = logging.getLogger("conveyor.worker")


@attrs.frozen(slots=True)
class Settings:
    """A worker's configuration, taken when ``run()`` starts and fixed for that run."""

    name: str
    info: WorkerInfo
    spec: HandlerSpec | None
    """The single handler, or ``None`` when ``routes`` pick one by task name."""
    routes: Routes | None
    concurrency: int
    chain: tuple[Middleware, ...]
    """The middleware between the retry policy and the handler, outermost first."""
    policy: RetryPolicy
    clock: Clock
    poll_strategy: PollStrategy | None
    heartbeat_interval: float
    resume_interval: float
    error_backoff: float
    error_backoff_max: float
    give_up_after: float | None


class Live:
    """What a worker and its run both change: the lifecycle state, the pause, the counts."""

    __slots__ = ("failed", "listeners", "name", "paused", "resumed", "state", "succeeded")

    def __init__(self, name: str, listeners: list[Listener]) -> None:
        self.name = name
        self.state = WorkerState.PENDING
        self.paused = False
        self.resumed = asyncio.Event()
        self.resumed.set()
        self.succeeded = 0
        self.failed = 0
        self.listeners = listeners

    def emit(self, event: Event) -> None:
        """Hand ``event`` to the listeners (callers check ``listeners`` first: events cost)."""
        deliver(self.listeners, event)

    def backend_error(self, what: str, exc: BaseException) -> None:
        """Say in one log line that the backend failed (the traceback at DEBUG); tell listeners."""
        logger.warning("worker %s: %s: %s", self.name, what, describe(exc))
        logger.debug("worker %s: %s", self.name, what, exc_info=exc)
        if self.listeners:
            self.emit(Error(self.name, exc))
