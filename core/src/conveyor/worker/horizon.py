"""Draining up to a horizon: when the queue's next task falls due, and waiting until then.

A burst run stops once nothing is ready. ``Worker.drain(within=...)`` goes on
while a task (a retry, a delayed push) falls due before the horizon. It learns
those times from the retries it acked itself and, when the backend can list
tasks, from the queue's waiting tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import Any

from conveyor.capability import Capability
from conveyor.clock import Clock, ManualClock
from conveyor.expose import MAX_PAGE_SIZE, Filter
from conveyor.status import Status

__all__ = ["Horizon"]

logger = logging.getLogger("conveyor.worker")

_RECHECK = 1.0
"""Seconds: the longest real-time wait before polling again (a push may come meanwhile)."""

_TICK = 1e-6
"""A moved clock lands this far past the due time: stored times are floored to the µs."""


class Horizon:
    """The end of a drain (``until``, on ``clock``) and the due times known before it."""

    def __init__(self, until: float, clock: Clock, hooks: Any, backend: Any) -> None:
        self.until = until
        self.clock = clock
        self.hooks = hooks
        self.queue: str = backend.queue
        self.lists = backend.supports(Capability.LIST_TASKS)
        self.retries: list[float] = []

    def retry_at(self, when: float) -> None:
        """Remember a retry this worker acked, due at ``when``."""
        if when <= self.until:
            heapq.heappush(self.retries, when)

    async def next_due(self) -> float | None:
        """The earliest time after now, up to the horizon, at which a task falls due."""
        now = self.clock.time()
        retries = self.retries
        while retries and retries[0] <= now:
            heapq.heappop(retries)  # due already and not ready: taken or gone meanwhile
        best = retries[0] if retries else None
        if self.lists:
            listed = await self._earliest_listed(now)
            if listed is not None and (best is None or listed < best):
                best = listed
        return best if best is not None and best <= self.until else None

    async def _earliest_listed(self, now: float) -> float | None:
        best: float | None = None
        for status in (Status.PENDING, Status.FAILED):
            page = 1
            while True:
                tasks = await self.hooks.list_tasks(
                    self.queue, Filter(status=status, page=page, page_size=MAX_PAGE_SIZE)
                )
                for task in tasks:
                    when = task.run_at.timestamp()
                    if now < when and (best is None or when < best):
                        best = when
                if len(tasks) < MAX_PAGE_SIZE:
                    break
                page += 1
        return best

    async def wait_for(self, when: float) -> bool:
        """Let time reach ``when``: a ``ManualClock`` is moved there, else wait (a while).

        ``False`` when the clock stood still through a real wait (a frozen clock that
        is not a ``ManualClock``): waiting longer would never get there.
        """
        clock = self.clock
        before = clock.time()
        if isinstance(clock, ManualClock):
            if before < when + _TICK:
                clock.set(when + _TICK)
            await asyncio.sleep(0)
            return True
        await asyncio.sleep(min(_RECHECK, max(0.0, when + _TICK - before)))
        if clock.time() > before:
            return True
        logger.warning(
            "drain: the clock %r did not move while waiting; stopping at what is ready", clock
        )
        return False
