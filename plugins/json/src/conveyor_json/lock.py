"""The store's inter-process lock (``flock`` on ``<path>.lock``) and who may wait for it.

The lock is taken without blocking when free. When another process holds it,
the wait happens in a thread (never in the event loop), at most
``lock_timeout`` seconds, then ``LockTimeout`` names the lock file. A
coroutine waiting so holds a gate: a second coroutine on this same descriptor
must not mistake the lock the thread is about to take for its own.

A handle belongs to one event loop at a time: its gate and its commit waiters
are that loop's. A call from another loop while the first still runs raises
``BackendInUse`` at once (never a hang); once the first loop has stopped (one
``asyncio.run`` after another), the next loop takes the handle over.
"""

from __future__ import annotations

import asyncio
import fcntl
import threading
import time
from collections.abc import Callable

from conveyor_json.errors import BackendInUse, LockTimeout
from conveyor_json.threads import ProcessPool

__all__ = ["StoreLock"]

_waits = ProcessPool(64, "conveyor-json-lock")
"""Threads that wait for other processes' locks (not the loop's default executor, which
a wait that outlives its timeout would hold on to); a forked child makes its own."""


class StoreLock:
    """``flock`` on one descriptor, with a timeout and an owner loop."""

    def __init__(self, fd: int, path: str, timeout: float) -> None:
        self.fd = fd
        self.path = path
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Lock | None = None
        self._adopting = threading.Lock()

    def _timed_out(self) -> LockTimeout:
        return LockTimeout(
            f"another process held the lock {self.path} for more than {self.timeout:g} s"
            " (lock_timeout); find it with `fuser` or `lsof` on that file, or raise"
            " lock_timeout if its work is that long"
        )

    def try_lock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def lock_blocking(self) -> None:
        """Take the lock from synchronous code (opening), waiting at most the timeout."""
        deadline = time.monotonic() + self.timeout
        pause = 0.0005
        while not self.try_lock():
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timed_out()
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)

    def check_loop(self, on_adopt: Callable[[], None]) -> None:
        """Refuse a second running event loop; adopt a new one once the old has stopped
        (``on_adopt`` then drops what the handle kept of the old loop)."""
        loop = asyncio.get_running_loop()
        if loop is self.loop:
            return
        with self._adopting:
            old = self.loop
            if old is not None and old is not loop and old.is_running():
                raise BackendInUse(
                    "this json backend is in use by another event loop that is still running"
                    " (another thread's asyncio.run?); a backend belongs to one event loop at"
                    " a time: open one backend per thread, or call it from one loop"
                )
            self.loop = loop
            self._gate = None
            if old is not None:
                on_adopt()

    async def acquire(self) -> bool:
        """Take the lock; return whether the gate is held too (release with ``release``)."""
        gate = self._gate
        if (gate is None or not gate.locked()) and self.try_lock():
            return False
        if gate is None:
            gate = self._gate = asyncio.Lock()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            await asyncio.wait_for(gate.acquire(), self.timeout)
        except TimeoutError:
            raise self._timed_out() from None
        if self.try_lock():
            return True
        guard = threading.Lock()
        claim = {"abandoned": False, "taken": False}

        def wait() -> None:
            # Blocks in flock: the kernel wakes it the moment the lock is free.
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            with guard:
                if claim["abandoned"]:
                    self.unlock()  # nobody waits for it any more (even if the loop is gone)
                else:
                    claim["taken"] = True

        waiting = loop.run_in_executor(_waits.get(), wait)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), max(0.0, deadline - loop.time()))
        except BaseException as exc:
            # Timed out or cancelled while the thread waits: it lets the lock go itself
            # when it gets it; the gate stays shut until then.
            with guard:
                claim["abandoned"] = True
                taken = claim["taken"]
            if taken:
                self.unlock()
                gate.release()
            else:
                waiting.add_done_callback(lambda _: gate.release())
            if isinstance(exc, TimeoutError):
                raise self._timed_out() from None
            raise
        return True

    def release(self, gated: bool) -> None:
        """Release the lock (and the gate, when ``acquire`` returned ``True``)."""
        self.unlock()
        if gated and self._gate is not None:
            self._gate.release()
