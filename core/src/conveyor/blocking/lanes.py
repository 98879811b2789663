"""Direct lanes: pushes run in the caller's own thread, on a loop and a handle of their own.

Why: handing a push to the private loop's thread and back costs two thread
wake-ups, about 90 us on a loaded two-core machine, where a Redis push takes
about 170 us (a sync push measured 1.5-1.9x the async one). A lane is an event
loop that no thread runs between calls and a ``Backend`` opened on it from the
same URL or factory: the caller takes a free lane, runs the push to its end with
``loop.run_until_complete`` and gives the lane back, so the push pays for its
own I/O only. At most ``size`` lanes exist (as many as threads ever pushed at
once, up to that bound); a caller finding none free uses the private loop.

Only for stores that separate handles share (a file, a server): a lane's push
must be visible to every other handle. A forked child abandons its lanes (the
parent's connections) and opens new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from conveyor.backend import Backend

__all__ = ["Lane", "Lanes"]

T = TypeVar("T")


class Lane:
    """An event loop run only by whoever holds the lane, and a backend opened on it."""

    def __init__(self, open_backend: Callable[[], Backend]) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.backend = open_backend()
        except BaseException:
            self.loop.close()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` to its end on this lane's loop, in the calling thread."""
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        """Close the backend and the loop (from the thread holding the lane)."""
        try:
            self.loop.run_until_complete(self.backend.aclose())
        finally:
            self.loop.close()


class Lanes:
    """A bounded pool of lanes, created on demand, shared by every thread."""

    def __init__(self, open_backend: Callable[[], Backend], size: int) -> None:
        self._open = open_backend
        self.size = size
        self._lock = threading.Lock()
        self._free: list[Lane] = []
        self._count = 0
        self._closed = False
        self.abandoned: list[Lane] = []

    def acquire(self) -> Lane | None:
        """A free lane (a new one while fewer than ``size`` exist), or ``None``."""
        if asyncio._get_running_loop() is not None:
            return None  # this thread runs a loop already; a lane's cannot run inside it
        with self._lock:
            if self._closed:
                return None
            if self._free:
                return self._free.pop()
            if self._count >= self.size:
                return None
            self._count += 1
        try:
            return Lane(self._open)
        except BaseException:
            with self._lock:
                self._count -= 1
            raise

    def release(self, lane: Lane, healthy: bool = True) -> None:
        """Give ``lane`` back; one interrupted mid-call (or after ``close``) is closed."""
        with self._lock:
            if healthy and not self._closed:
                self._free.append(lane)
                return
            self._count -= 1
        with contextlib.suppress(Exception):
            lane.close()

    def run(self, call: Callable[[Backend], Coroutine[Any, Any, T]]) -> tuple[bool, T | None]:
        """``(True, result)`` of ``call(backend)`` run on a lane, or ``(False, None)`` if
        no lane was free."""
        lane = self.acquire()
        if lane is None:
            return False, None
        healthy = False
        try:
            result = lane.run(call(lane.backend))
            healthy = True
        except Exception:
            healthy = True  # the call failed, the lane did not: its loop ran to the end
            raise
        finally:
            self.release(lane, healthy)
        return True, result

    def close(self) -> None:
        """Close the free lanes now; lanes in use are closed when given back."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
            self._count -= len(free)
        for lane in free:
            with contextlib.suppress(Exception):
                lane.close()

    def forget(self) -> None:
        """In a forked child: drop every lane unclosed (their sockets are the parent's)."""
        self.abandoned.extend(self._free)
        self._lock = threading.Lock()
        self._free = []
        self._count = 0
