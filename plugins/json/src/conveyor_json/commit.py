"""Group commit: the fsyncs that make a journal's appends durable, shared by every writer.

A write is durable once an fsync that *started after it* has returned: the
kernel flushes every dirty page of the file, whoever wrote it. So concurrent
operations need not each fsync. One ``FileSync`` per open journal counts the
appends (``wrote``) and the appends known to be on disk (``synced``), for
every thread and event loop of the process that shares the journal: whoever
needs a write on disk either finds an fsync already running that started
after it (and waits for that one), or leads a new one, which covers every
append made before it starts. At most two fsyncs run at once (the kernel
merges concurrent ones into one journal commit).

``GroupCommit`` is one event loop's side of it. When nothing else of that loop
could run meanwhile (one producer: no callback is ready), the caller syncs
inline: one ``fdatasync`` in its own thread, or a wait for the one another
thread is running (both bounded by the disk), and no thread hand-off. Otherwise
it waits on a future, and one fsync is started (in a thread, so the loop goes
on) once the coroutines already runnable have written, so that it covers all
of them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Protocol

from conveyor_json.errors import StoreBroken
from conveyor_json.threads import ProcessPool

__all__ = ["FileSync", "GroupCommit"]

_SYNCS_IN_FLIGHT = 2
_syncs = ProcessPool(_SYNCS_IN_FLIGHT, "conveyor-json-fsync")
"""Threads that only fsync, so a slow disk never starves the loop's default executor."""


class _Handle(Protocol):
    path: str
    fd: int
    broken: str | None


def _resolve(waiter: asyncio.Future[None], error: BaseException | None) -> None:
    if waiter.done():
        return
    if error is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(error)


class FileSync:
    """The appends of one journal and the fsyncs that cover them, for every thread."""

    def __init__(self, handle: _Handle) -> None:
        self.handle = handle
        self.written = 0
        self.synced = 0
        # A plain lock and a lock per sleeping thread rather than a ``Condition``: the
        # lone producer takes this path once a push, and ``Condition`` is Python code.
        self._mutex = threading.Lock()
        self._sleepers: list[threading.Lock] = []
        self._running: list[int] = []  # the targets of the fsyncs in flight
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._wanted = 0  # the highest mark a future waits for
        self._retired: list[int] = []

    # --- counting (under the journal's lock) -------------------------------------

    def wrote(self) -> int:
        """Count one append (its bytes have reached the kernel); return its mark.

        Called under the journal's lock only, so there is one writer; an fsync
        reading ``written`` meanwhile sees this append or an earlier count, and
        whoever waits for this mark asks only after this returns.
        """
        self.written += 1
        return self.written

    def everything_synced(self) -> None:
        """Everything written so far is on disk (a compaction fsync'd a copy of it)."""
        with self._mutex:
            self.synced = self.written
            self._changed()

    # --- waiting ------------------------------------------------------------------

    def _covered(self) -> int:
        """The highest mark that an fsync on disk or in flight covers."""
        running = self._running
        if running:
            return max(self.synced, *running)
        return self.synced

    def _broken(self) -> StoreBroken | None:
        reason = self.handle.broken
        return None if reason is None else StoreBroken(reason)

    def _changed(self) -> None:
        """Wake every thread sleeping in ``sync_to`` and settle the futures (holding
        ``_mutex``)."""
        sleepers = self._sleepers
        if sleepers:
            self._sleepers = []
            for sleeper in sleepers:
                sleeper.release()
        if self._waiters:
            self._settle()

    def sync_to(self, mark: int) -> None:
        """Block until write ``mark`` is on disk, leading an fsync when none covers it."""
        mutex = self._mutex
        mutex.acquire()
        try:
            while self.synced < mark:
                error = self._broken()
                if error is not None:
                    raise error
                if len(self._running) < _SYNCS_IN_FLIGHT and self._covered() < mark:
                    self._lead()
                    continue
                sleeper = threading.Lock()
                sleeper.acquire()
                self._sleepers.append(sleeper)
                mutex.release()
                try:
                    sleeper.acquire()  # released by ``_changed``
                finally:
                    mutex.acquire()
        finally:
            mutex.release()

    def wait(self, mark: int, waiter: asyncio.Future[None]) -> bool:
        """Have ``waiter`` resolved once write ``mark`` is on disk; return whether a
        thread must be started to lead the fsync (``kick``)."""
        with self._mutex:
            error = self._broken()
            if error is not None or self.synced >= mark:
                _resolve(waiter, error)
                return False
            self._waiters.append((mark, waiter.get_loop(), waiter))
            self._wanted = max(self._wanted, mark)
            return self._needs_leader()

    def _needs_leader(self) -> bool:
        return self._wanted > self._covered() and len(self._running) < _SYNCS_IN_FLIGHT

    def kick(self) -> None:
        """Start a thread that leads an fsync for the futures waiting (if still needed)."""
        _syncs.get().submit(self._lead_for_waiters)

    def _lead_for_waiters(self) -> None:
        with self._mutex:
            if self._broken() is None and self._needs_leader():
                self._lead()

    def _lead(self) -> None:
        """One fsync covering every append so far (called holding ``_mutex``, released
        during the fsync itself)."""
        target, fd = self.written, self.handle.fd
        if fd < 0:  # closed (its last backend closed while a write waited for the disk)
            self.handle.broken = self.handle.broken or (
                f"{self.handle.path} was closed while a write waited for its fsync; whether"
                " that write is on disk is unknown"
            )
            self._changed()
            return
        running, mutex = self._running, self._mutex
        running.append(target)
        mutex.release()
        error: OSError | None = None
        try:
            os.fdatasync(fd)
        except OSError as exc:
            error = exc
        except BaseException:
            # Interrupted (a signal's exception in the main thread), not failed: the others
            # must not go on waiting for it, so they look again and one leads a new fsync.
            mutex.acquire()
            running.remove(target)
            self._changed()
            if self._waiters and self._broken() is None and self._needs_leader():
                self.kick()
            raise
        mutex.acquire()
        running.remove(target)
        if error is not None:
            # Never retried: after a failed fsync the kernel may have dropped the
            # dirty pages, so a retry that succeeds would prove nothing.
            if self.handle.broken is None:
                self.handle.broken = (
                    f"fsync of {self.handle.path} failed ({error.strerror}); acknowledged"
                    " writes may not be on disk, so this handle refuses further use. Reopen"
                    " the store"
                )
        elif target > self.synced:
            # An fsync covers everything written before it started, whichever ends first.
            self.synced = target
        self._changed()
        if self._retired and not running:
            for old in self._retired:
                os.close(old)
            self._retired.clear()
        if self._waiters and self._broken() is None and self._needs_leader():
            self.kick()  # futures wait for writes no fsync covers yet

    def _settle(self) -> None:
        """Resolve the futures whose writes are synced (all of them, with an error)."""
        error, keep = self._broken(), []
        for mark, loop, waiter in self._waiters:
            if error is None and mark > self.synced:
                keep.append((mark, loop, waiter))
                continue
            try:
                loop.call_soon_threadsafe(_resolve, waiter, error)
            except RuntimeError:
                pass  # that loop is closed: nobody waits any more
        self._waiters = keep

    # --- replaced and closed files ---------------------------------------------------

    def retire(self, fd: int) -> None:
        """Close ``fd`` (a replaced file) now, or once the fsyncs running on it end."""
        with self._mutex:
            if self._running:
                self._retired.append(fd)
                return
        os.close(fd)

    def idle(self) -> bool:
        """Whether no fsync runs (the handle's files may be closed)."""
        with self._mutex:
            return not self._running

    def close_retired(self) -> None:
        """Close replaced files at once (the handle is closing)."""
        with self._mutex:
            retired, self._retired = self._retired, []
            self._changed()
        for fd in retired:
            try:
                os.close(fd)
            except OSError:
                pass


class GroupCommit:
    """One event loop's way to wait until its writes are on disk (see the module)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._kicks: set[FileSync] = set()

    def done_now(self, sync: FileSync, mark: int) -> bool:
        """Whether write ``mark`` is on disk now, syncing it inline when nothing else of
        this loop could run meanwhile; ``False``: await ``durable``."""
        if not self.enabled or sync.synced >= mark:
            return True
        if not self._kicks and not getattr(asyncio.get_running_loop(), "_ready", True):
            # Nothing else of this loop can run meanwhile (one producer, say), so no
            # write of it could share the fsync: sync here, no thread hand-off.
            # ``_ready`` is CPython's run queue; other loops take the thread.
            sync.sync_to(mark)
            return True
        return False

    def inline(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether a durable write of ``loop`` (the running one) should block for the disk
        in its thread: nothing else of the loop could run meanwhile (see ``combine``)."""
        return self.enabled and not self._kicks and not getattr(loop, "_ready", True)

    async def durable(self, sync: FileSync, mark: int) -> None:
        """Return once write ``mark`` of ``sync``'s journal is on disk; ``StoreBroken`` if
        that cannot be known."""
        if self.done_now(sync, mark):
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if sync.wait(mark, waiter) and sync not in self._kicks:
            # Start it after the coroutines already runnable have written, so that
            # one fsync covers all of them.
            self._kicks.add(sync)
            loop.call_soon(self._kick, sync)
        await waiter

    def _kick(self, sync: FileSync) -> None:
        self._kicks.discard(sync)
        sync.kick()

    def reset(self) -> None:
        """Forget the kicks an event loop that stopped had scheduled."""
        self._kicks.clear()
