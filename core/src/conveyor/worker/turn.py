"""Taking turns at a shared poll iterator: one lane at a time, and no hand-off per task."""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Turn"]


class Turn:
    """A lock for the lanes sharing one poll iterator.

    Unlike ``asyncio.Lock`` it lets the lane that just released take it again
    at once, even with others waiting: a lane whose handler does not yield
    goes on polling without a context switch per task. Waiters are woken one
    per release and run when the holder yields to the loop (its handler
    awaits I/O or a thread), which is exactly when another lane has work to do.
    """

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Wait until nobody holds the turn (the caller then sets ``busy``)."""
        loop = asyncio.get_running_loop()
        while self.busy:
            future = loop.create_future()
            self.waiters.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self.wake()  # woken, but leaving: pass the wake-up on
                else:
                    try:
                        self.waiters.remove(future)
                    except ValueError:
                        pass
                raise

    def release(self) -> None:
        """Give the turn up and wake one waiter."""
        self.busy = False
        if self.waiters:
            self.wake()

    def wake(self) -> None:
        """Wake the first waiter still waiting."""
        waiters = self.waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
