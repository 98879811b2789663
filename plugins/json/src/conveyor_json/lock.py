"""The store's lock: one section at a time in this process, then ``flock`` across processes.

A journal is shared by every thread and event loop of the process that opens
the store, so its lock has two parts, always taken in this order:

- a ``threading.Lock`` (the process's side: ``flock`` is per open file, so it
  cannot tell this process's threads apart). Sections under it are short (no
  I/O but one ``write``), so a call waits for it in the event loop for at most
  ``_SPIN`` seconds; past that, or when the holder is itself waiting for
  another process, it waits in a thread;
- ``flock`` on ``<path>.lock``, taken without blocking when free. When another
  process holds it, the wait happens in a thread (never in the event loop), at
  most ``lock_timeout`` seconds, then ``LockTimeout`` names the lock file.
"""

from __future__ import annotations

import asyncio
import fcntl
import threading
import time
from collections.abc import Callable

from conveyor_json.errors import LockTimeout
from conveyor_json.threads import ProcessPool

__all__ = ["StoreLock"]

_SPIN = 0.005
"""How long a call may wait for another thread's section in the event loop itself."""

_waits = ProcessPool(64, "conveyor-json-lock")
"""Threads that wait for other processes' locks (not the loop's default executor, which
a wait that outlives its timeout would hold on to); a forked child makes its own."""


class StoreLock:
    """``flock`` on one descriptor behind a process-wide mutex, with a timeout."""

    def __init__(self, fd: int, path: str, timeout: float) -> None:
        self.fd = fd
        self.path = path
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._slow = False  # the holder waits for another process's flock

    def _timed_out(self, timeout: float) -> LockTimeout:
        return LockTimeout(
            f"another process held the lock {self.path} for more than {timeout:g} s"
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

    def lock_blocking(self, timeout: float | None = None) -> None:
        """Take ``flock`` from synchronous code, waiting at most the timeout."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while not self.try_lock():
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timed_out(timeout)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)

    def enter_if_idle(self, timeout: float | None = None) -> bool:
        """From synchronous code (opening): take both parts unless another section of this
        process holds the mutex (then ``False``); wait for other processes' flock at
        most the timeout (also when the holder waits for it). Release with ``release``."""
        timeout = self.timeout if timeout is None else timeout
        if not self._mutex.acquire(blocking=False):
            if not self._slow:
                return False
            if not self._mutex.acquire(timeout=timeout):
                raise self._timed_out(timeout)
        try:
            self.lock_blocking(timeout)
        except BaseException:
            self._mutex.release()
            raise
        return True

    def enter_now(self) -> bool:
        """Take both parts if both are free this instant (no waiting, no coroutine)."""
        if not self._mutex.acquire(blocking=False):
            return False
        if self.try_lock():
            return True
        self._mutex.release()
        return False

    def enter_soon(self) -> bool:
        """Take both parts if the mutex is free within the spin (and not held by a wait for
        another process) and the flock is free then; ``False`` (nothing taken) otherwise."""
        mutex = self._mutex
        if self._slow or not mutex.acquire(timeout=_SPIN):
            return False
        if self.try_lock():
            return True
        mutex.release()
        return False

    async def acquire(self, timeout: float | None = None) -> None:
        """Take both parts (release with ``release``); ``LockTimeout`` past the timeout."""
        mutex = self._mutex
        timeout = self.timeout if timeout is None else timeout
        if not mutex.acquire(blocking=False) and (self._slow or not mutex.acquire(timeout=_SPIN)):
            await self._in_thread(lambda: mutex.acquire(timeout=timeout), timeout, False)
        if self.try_lock():
            return
        # Until the flock is ours, the mutex's holder (this wait, even once its caller
        # gave up) waits for another process: others wait in a thread, not the loop.
        self._slow = True
        await self._in_thread(self._flock, timeout, True)
        self._slow = False

    def _flock(self) -> bool:
        # Blocks in flock: the kernel wakes it the moment the lock is free.
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return True

    def _let_go_of_mutex(self, held: bool) -> None:
        if held:
            self._slow = False
        self._mutex.release()

    async def _in_thread(self, take: Callable[[], bool], timeout: float, held: bool) -> None:
        """Run ``take`` (a blocking step of ``acquire``) in a thread, at most ``timeout``.

        ``held``: the mutex is held while ``take`` takes the flock. It stays held
        until the flock is (by this coroutine, or by the thread if the coroutine
        gave up meanwhile), so nobody else touches the descriptor in between.
        """
        guard = threading.Lock()
        claim = {"abandoned": False, "taken": False}

        def let_go() -> None:
            if held:
                self.unlock()
            self._let_go_of_mutex(held)

        def wait() -> None:
            try:
                taken = take()
            except BaseException:
                with guard:
                    abandoned = claim["abandoned"]
                if abandoned and held:
                    self._let_go_of_mutex(held)
                raise
            with guard:
                if not claim["abandoned"]:
                    claim["taken"] = taken
                    return
            if taken:  # nobody waits for it any more (even if the loop is gone)
                let_go()

        loop = asyncio.get_running_loop()
        waiting = loop.run_in_executor(_waits.get(), wait)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), timeout)
        except BaseException as exc:
            with guard:
                claim["abandoned"] = True
                taken = claim["taken"]
            if taken:  # it got there just as we gave up: undo it here
                let_go()
            elif held and waiting.done():
                self._let_go_of_mutex(held)  # the wait itself failed
            if isinstance(exc, TimeoutError):
                raise self._timed_out(timeout) from None
            raise
        if not claim["taken"]:  # the mutex wait timed out in the thread
            raise self._timed_out(timeout)

    def release(self) -> None:
        """Release both parts."""
        self.unlock()
        self._mutex.release()
