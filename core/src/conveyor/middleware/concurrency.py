"""Limit how many tasks run at once per key (per queue, per customer, ...)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from conveyor.middleware.base import Invocation, Next

__all__ = ["ConcurrencyLimit"]


def _by_queue(invocation: Invocation) -> Hashable:
    return invocation.task.queue


class ConcurrencyLimit:
    """At most ``limit`` handlers run at once for each ``key(invocation)``.

    The default key is the task's queue. A task over the limit waits (holding
    its lease, which the worker's heartbeat keeps fresh) until a slot frees.
    Keys with nothing running are forgotten, so unbounded key spaces are fine.
    """

    def __init__(self, limit: int, key: Callable[[Invocation], Hashable] = _by_queue) -> None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"ConcurrencyLimit needs a whole number of at least 1, not {limit!r}")
        self.limit = limit
        self.key = key
        self._slots: dict[Hashable, tuple[asyncio.Semaphore, list[int]]] = {}

    async def __call__(self, invocation: Invocation, call_next: Next) -> Any:
        """Wait for a slot of this invocation's key, then run the rest of the chain."""
        key = self.key(invocation)
        entry = self._slots.get(key)
        if entry is None:
            entry = self._slots[key] = (asyncio.Semaphore(self.limit), [0, 0])
        semaphore, counts = entry
        counts[0] += 1  # users: waiting or running
        try:
            async with semaphore:
                counts[1] += 1
                try:
                    return await call_next(invocation)
                finally:
                    counts[1] -= 1
        finally:
            counts[0] -= 1
            if counts[0] == 0:
                del self._slots[key]

    def running(self, key: Hashable) -> int:
        """How many handlers hold a slot of ``key`` now."""
        entry = self._slots.get(key)
        return 0 if entry is None else entry[1][1]

    def __repr__(self) -> str:
        return f"ConcurrencyLimit({self.limit})"
