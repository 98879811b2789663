"""Futures waiting for a journal's news (a task ready, a task final), of any thread's loop.

A journal is shared by the threads of its process, each with its own event
loop; its sections (any thread) wake the waiters, each through its own loop
(``call_soon_threadsafe``), and the maps of waiters are guarded by a lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

from conveyor import TaskId

__all__ = ["Waiters", "wake_all"]


class Waiters:
    """The waiter maps of a ``Journal`` and the ways in and out of them."""

    ready_waiters: dict[str, list[asyncio.Future[None]]]
    final_waiters: dict[str, list[asyncio.Future[None]]]
    _waiting: threading.Lock

    def watch_ready(self, queue: str, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` (of any thread's loop) when a task of ``queue`` becomes ready."""
        with self._waiting:
            self.ready_waiters.setdefault(queue, []).append(waiter)

    def unwatch_ready(self, queue: str, waiter: asyncio.Future[None]) -> None:
        with self._waiting:
            waiters = self.ready_waiters.get(queue)
            if waiters and waiter in waiters:
                waiters.remove(waiter)

    def watch_final(self, task_ids: Iterable[TaskId], waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` when one of ``task_ids`` reaches a final status."""
        with self._waiting:
            for tid in task_ids:
                self.final_waiters.setdefault(tid, []).append(waiter)

    def take_waiters(self, other: Waiters) -> None:
        """Take over the waiters of ``other`` (a broken journal this one replaces)."""
        with other._waiting:
            ready, final = other.ready_waiters, other.final_waiters
            other.ready_waiters, other.final_waiters = {}, {}
        with self._waiting:
            for queue, waiters in ready.items():
                self.ready_waiters.setdefault(queue, []).extend(waiters)
            for tid, waiters in final.items():
                self.final_waiters.setdefault(tid, []).extend(waiters)

    def _wake_ready(self, queue: str) -> None:
        if queue in self.ready_waiters:
            with self._waiting:
                waiters = self.ready_waiters.pop(queue, None)
            if waiters:
                wake_all(waiters)

    def _wake_final(self, task_id: str) -> None:
        if task_id in self.final_waiters:
            with self._waiting:
                waiters = self.final_waiters.pop(task_id, None)
            if waiters:
                wake_all(waiters)


def wake_all(waiters: list[asyncio.Future[None]]) -> None:
    """Resolve futures of any thread's loop (another thread's through its loop)."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for waiter in waiters:
        if waiter.done():
            continue
        loop = waiter.get_loop()
        if loop is here:
            waiter.set_result(None)
        else:
            try:
                loop.call_soon_threadsafe(_wake, waiter)
            except RuntimeError:
                pass  # that loop is closed: nobody waits any more
    waiters.clear()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
