"""Group commit: the fsyncs that make a journal's appends durable, shared by its writers.

A write is durable once an fsync that *started after it* has returned: the
kernel flushes every dirty page of the file, whoever wrote it. So concurrent
operations need not each fsync: the first to wait schedules one, which starts
once the operations already runnable have written, and covers all of them.
fsyncs run in threads (the event loop goes on) and up to two at once (the
kernel merges concurrent ones into one journal commit). When nothing else could
run meanwhile (a single producer: the loop has no other callback ready), the
fsync is made inline instead: one write and one fdatasync, no thread hand-off.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from conveyor_json.errors import StoreBroken
from conveyor_json.threads import ProcessPool

__all__ = ["GroupCommit"]

_SYNCS_IN_FLIGHT = 2
_syncs = ProcessPool(_SYNCS_IN_FLIGHT, "conveyor-json-fsync")
"""Threads that only fsync, so a slow disk never starves the loop's default executor."""


class _Handle(Protocol):
    path: str
    fd: int
    broken: str | None


class GroupCommit:
    """Counts writes (``mark``), syncs them, and tells waiters when theirs are on disk."""

    def __init__(self, handle: _Handle, enabled: bool) -> None:
        self.handle = handle
        self.enabled = enabled
        self.written = 0
        self.synced = 0
        self._target = 0
        self._soon = False
        self._syncing: set[asyncio.Future[None]] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._retired: list[int] = []

    def wrote(self) -> int:
        """Count one append; return its mark."""
        self.written += 1
        return self.written

    def everything_synced(self) -> None:
        """Everything written so far is on disk (a compaction fsync'd a copy of it)."""
        self.synced = self._target = self.written
        if self._waiters:
            self._settle()

    async def durable(self, mark: int) -> None:
        """Return once write ``mark`` is on disk; ``StoreBroken`` if that cannot be known."""
        if not self.enabled or self.synced >= mark:
            return
        if self.handle.broken is not None:
            raise StoreBroken(self.handle.broken)
        loop = asyncio.get_running_loop()
        if not self._syncing and not self._waiters and not getattr(loop, "_ready", True):
            # Nothing else can run meanwhile (no callback is ready: one producer, say),
            # so no write could share this fsync: do it here, one syscall, no thread
            # hand-off. ``_ready`` is CPython's run queue; other loops take the thread.
            self._sync_inline()
            return
        waiter = loop.create_future()
        self._waiters.append((mark, waiter))
        if not self._soon:
            # Start it after the coroutines already runnable have written, so that
            # one fsync covers all of them. (Starting at once and overlapping the
            # next writes with it measured ~10% slower: twice the thread hand-offs.)
            self._soon = True
            loop.call_soon(self._start)
        await waiter

    def _start(self) -> None:
        self._soon = False
        if self.handle.broken is not None:
            self._settle()  # fails every waiter: nothing more will be synced
            return
        if len(self._syncing) >= _SYNCS_IN_FLIGHT or self._target >= self.written:
            return
        target = self._target = self.written
        fd = self.handle.fd
        future = asyncio.get_running_loop().run_in_executor(_syncs.get(), os.fdatasync, fd)
        self._syncing.add(future)
        future.add_done_callback(lambda done: self._finished(done, target))

    def _sync_inline(self) -> None:
        target = self._target = self.written
        try:
            os.fdatasync(self.handle.fd)
        except OSError as error:
            self.handle.broken = (
                f"fsync of {self.handle.path} failed ({error.strerror}); acknowledged writes"
                " may not be on disk, so this handle refuses further use. Reopen the store"
            )
            raise StoreBroken(self.handle.broken) from error
        self.synced = max(self.synced, target)

    def _finished(self, done: asyncio.Future[None], target: int) -> None:
        self._syncing.discard(done)
        error = done.exception()
        if error is not None:
            # Never retried: after a failed fsync the kernel may have dropped the
            # dirty pages, so a retry that succeeds would prove nothing.
            reason = error.strerror if isinstance(error, OSError) else repr(error)
            self.handle.broken = (
                f"fsync of {self.handle.path} failed ({reason}); acknowledged writes may"
                " not be on disk, so this handle refuses further use. Reopen the store"
            )
        else:
            # An fsync covers everything written before it started, whichever ends first.
            self.synced = max(self.synced, target)
        self._settle()
        if self._retired and not self._syncing:
            for fd in self._retired:
                os.close(fd)
            self._retired.clear()
        if self._waiters:
            self._start()

    def _settle(self) -> None:
        """Release the waiters whose writes are synced (or all, with an error)."""
        broken, keep = self.handle.broken, []
        for mark, waiter in self._waiters:
            if waiter.done():
                continue
            if broken is not None:
                waiter.set_exception(StoreBroken(broken))
            elif mark <= self.synced:
                waiter.set_result(None)
            else:
                keep.append((mark, waiter))
        self._waiters = keep

    def retire(self, fd: int) -> None:
        """Close ``fd`` (a replaced file) now, or once the fsyncs running on it end."""
        if not self._syncing:
            os.close(fd)
        else:
            self._retired.append(fd)

    def reset(self) -> None:
        """Forget the futures of an event loop that stopped (another loop takes over)."""
        self._syncing.clear()
        self._waiters.clear()
        self._soon = False
        self._target = self.synced

    async def drain(self) -> None:
        """Wait for the fsyncs in flight."""
        while self._syncing:
            await asyncio.wait(list(self._syncing))

    def close_retired(self) -> None:
        """Close replaced files at once (the handle is closing)."""
        for fd in self._retired:
            try:
                os.close(fd)
            except OSError:
                pass
        self._retired.clear()
