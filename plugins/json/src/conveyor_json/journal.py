"""The journal file: creating, reading, locking, appending, syncing and compacting it.

One ``Journal`` is one open handle on a store file, shared by every thread and
event loop of the process that opens the store (``shared.open_journal``). Every
operation runs as a short synchronous critical section under the process's
mutex and an exclusive ``flock`` on ``<path>.lock`` (a separate file, so it
survives the store being replaced by a compaction): catch up with what other
processes appended, decide, append, release. ``fsync`` happens after the lock
is released, and concurrent operations of the process share one (group commit).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import stat
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from conveyor import BackendClosed
from conveyor_json import files, records
from conveyor_json.append import Appending
from conveyor_json.combine import Combining
from conveyor_json.commit import FileSync
from conveyor_json.compaction import Compaction
from conveyor_json.entry import Source, ref
from conveyor_json.errors import CorruptStore, DiskFull, StoreBroken, StoreError, TornTailWarning
from conveyor_json.framing import scan
from conveyor_json.lock import StoreLock
from conveyor_json.state import State
from conveyor_json.waiters import Waiters, wake_all

__all__ = ["Journal", "Section"]

log = logging.getLogger("conveyor.json")

T = TypeVar("T")
U = TypeVar("U")
Section = Callable[[State], tuple[list[dict[str, Any]], T]]
"""A critical section: reads the caught-up state, returns the records to append and a result."""

_HEADER_MAX = 4096


class Journal(Waiters, Compaction, Appending, Combining):
    """An open store file shared with other handles and processes through the lock file."""

    def __init__(
        self,
        path: str,
        *,
        compact_threshold: int = 10_000,
        lock_timeout: float = 30.0,
    ) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.lock_path = self.path + ".lock"
        self.compact_threshold = compact_threshold
        self.broken: str | None = None
        self.full = False
        self.closed = False
        self.fd = -1
        self.lock_fd = -1
        self.ident = (0, 0)
        self.offset = 0
        self.state = State()
        self.ready_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.final_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.commit = FileSync(self)
        self.users = 0  # the backends sharing it (``shared``)
        self._waiting = threading.Lock()  # guards the two waiter maps across threads
        self._gate = threading.Lock()
        self._queue = []
        self._leading = False
        self._compact_floor = 0
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise StoreError(
                f"cannot open store {self.path}: directory {folder} does not exist;"
                " create it first (the json backend does not create directories)"
            )
        files.refuse_link(self.path)
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open store {self.path}: it is a directory; name a file")
        self.lock_fd = files.open_lock(self.lock_path, self.path)
        self.lock = StoreLock(self.lock_fd, self.lock_path, lock_timeout)
        info = os.fstat(self.lock_fd)
        self.key = (info.st_dev, info.st_ino)
        try:
            self.lock.lock_blocking()
            try:
                # Under the lock no compaction runs, so any copy left is a killed one's.
                files.remove_stale_temps(self.path)
                files.refuse_link(self.path)
                if not os.path.lexists(self.path):
                    self._create()
                if self._load() < records.VERSION:
                    self.compact(keep_final=True)  # migrate: groups need a version-2 header
            finally:
                self.lock.unlock()
        except BaseException:
            self._close_fds()
            raise

    # --- opening ------------------------------------------------------------------

    def _create(self) -> None:
        """Make a new store atomically: header into a temp file, fsync, rename, fsync dir."""
        self._replace_with([records.header_line()], mode=files.MODE, owner=None)

    def _load(self) -> int:
        """(Re)read the whole file into a fresh state (under the lock); return its version."""
        fd = files.open_store(self.path)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"cannot open store {self.path}: it is not a regular file")
            head = os.pread(fd, min(_HEADER_MAX, info.st_size), 0)
            first, newline, _ = head.partition(b"\n")
            version = records.check_header(self.path, first)
            if not newline:
                raise CorruptStore(
                    records.damaged(self.path, "line 1", "the header line has no end")
                )
            state = State(self._wake_ready, self._wake_final, Source(self.path, records.decode))
            state.source.fd = fd  # type: ignore[union-attr]
            # Loading makes a million objects and no garbage cycle: the cycle collector's
            # passes over them (a third of the time at 1M tasks) would find nothing.
            collecting = gc.isenabled()
            gc.disable()
            try:
                end = self._read(fd, state, len(first) + 1, info.st_size, opening=True)
            finally:
                if collecting:
                    gc.enable()
        except BaseException:
            os.close(fd)
            raise
        self._adopt(fd, (info.st_dev, info.st_ino), end)
        self.state = state
        for waiters in list(self.ready_waiters.values()) + list(self.final_waiters.values()):
            wake_all(waiters)
        return version

    def _adopt(self, fd: int, ident: tuple[int, int], offset: int) -> None:
        # The new descriptor first: an fsync starting meanwhile must not pick up one
        # that is being closed.
        old, self.fd, self.ident, self.offset = self.fd, fd, ident, offset
        if old >= 0:
            self.commit.retire(old)

    def _read(self, fd: int, state: State, start: int, end: int, *, opening: bool) -> int:
        """Apply the whole units (lines, groups) in ``[start, end)``; return where they stop.

        A damaged or unfinished tail (a crash mid-write; after a power cut, garbage
        where unsynced writes were) is cut off the file with a warning, as long as
        no whole record follows the damage; otherwise ``CorruptStore`` names the
        line (when reading the whole file) or its byte offset.
        """
        good = start
        line_no = 2
        bad: str | None = None
        apply = state.apply
        decode = records.decode
        for unit in scan(fd, start, end, records.MAX_LINE):
            # Payloads stay in the file: each record carries a reference to its line.
            if bad is not None:
                if unit.lines is not None and _decodes(unit.lines):
                    raise CorruptStore(bad)  # a record follows the damage: not a torn tail
                continue
            reason = unit.problem
            if unit.lines is not None:
                try:
                    lines = unit.lines
                    if len(lines) == 1:
                        apply(decode(lines[0], ref(unit.pos, len(lines[0]))))
                    else:
                        state.apply_group(lines, unit.stop)  # type: ignore[arg-type]
                except (KeyError, ValueError, TypeError) as exc:
                    reason = str(exc) if isinstance(exc, ValueError) else repr(exc)
                else:
                    good = unit.stop  # type: ignore[assignment]
                    line_no += unit.spans
                    continue
            where = f"line {line_no}" if opening else f"the record at byte {unit.pos}"
            if unit.stop is None and reason is None:
                break  # unfinished: cut below
            bad = records.damaged(self.path, where, reason or "damaged")
            if unit.stop is None or not opening:
                if not opening:
                    self.broken = bad
                raise CorruptStore(bad)
        if good < end:
            self._cut(fd, good, end)
        return good

    def _cut(self, fd: int, pos: int, end: int) -> None:
        message = (
            f"{self.path}: dropped a partly written last record ({end - pos} bytes at offset"
            f" {pos}) left by a process that stopped mid-write; it was never acknowledged"
        )
        log.warning(message)
        warnings.warn(message, TornTailWarning, stacklevel=4)
        try:
            os.ftruncate(fd, pos)
            os.fsync(fd)
        except OSError as exc:
            raise StoreError(f"cannot cut the torn tail of {self.path}: {exc.strerror}") from None

    # --- the critical section ---------------------------------------------------

    async def run(self, section: Section[T], timeout: float | None = None) -> tuple[T, int]:
        """Run ``section`` under the lock after catching up; append its records.

        Returns its result and the write mark to pass to ``GroupCommit.durable``.
        The section never awaits; no other section of this process runs meanwhile.
        ``timeout``: how long to wait for the lock (``LockTimeout``), by default
        the journal's.
        """
        self._usable()
        lock = self.lock
        if not lock.enter_now():  # free (the common case): no coroutine, no wait
            await lock.acquire(timeout)
        try:
            return self._locked(section)
        finally:
            lock.release()

    async def run_then(
        self, section: Section[T], then: Callable[[T], U], timeout: float | None = None
    ) -> U:
        """``run``, then ``then(result)`` still under the lock, with the records applied
        (a claim reads back the task it claimed, which no other thread changes meanwhile)."""
        self._usable()
        lock = self.lock
        if not lock.enter_now():
            await lock.acquire(timeout)
        try:
            return then(self._locked(section)[0])
        finally:
            lock.release()

    def join(self, timeout: float | None = None) -> None:
        """Catch up under the lock, from synchronous code: another backend of this process
        opens the store this journal has open (so it sees, and checks, the file as a
        fresh open would; ``LockTimeout`` as one would).

        Skipped while another section of this process holds the lock: that one is
        catching up right now, and waiting here could block the very event loop
        whose coroutine holds it.
        """
        self._usable()
        lock = self.lock
        if not lock.enter_if_idle(timeout):
            return
        try:
            self._usable()
            self._catch_up()
        finally:
            lock.release()

    def _locked(self, section: Section[T]) -> tuple[T, int]:
        self._usable()
        self._catch_up()
        new, result = section(self.state)
        if new:
            self._append(new)
            if self._compact_due():
                self._auto_compact(self.state.dead)
        return result, self.commit.written

    def _usable(self) -> None:
        if self.closed:
            raise BackendClosed(f"the json store {self.path} was closed; open it again")
        if self.broken is not None:
            raise (DiskFull if self.full else StoreBroken)(self.broken)

    def _catch_up(self) -> None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise StoreError(
                f"the store file {self.path} was removed while open; this handle stops here"
            ) from None
        if (info.st_dev, info.st_ino) != self.ident:
            self._load()  # another process compacted: the file was replaced
        elif info.st_size > self.offset:
            self.offset = self._read(self.fd, self.state, self.offset, info.st_size, opening=False)
        elif info.st_size < self.offset:
            self.broken = (
                f"{self.path} shrank from {self.offset} to {info.st_size} bytes while open;"
                " something outside conveyor changed it. Reopen the store"
            )
            raise StoreBroken(self.broken)

    def changed(self) -> bool:
        """Whether the file grew or was replaced since this handle last read it (no lock)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return True
        return (info.st_dev, info.st_ino) != self.ident or info.st_size != self.offset

    # --- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (once a running fsync ends) and the lock file."""
        if self.closed:
            return
        self.compact_before_close()
        self.closed = True
        self._close_fds()
        # Drop the index now: it refers back to this handle, so it would otherwise
        # wait for the cycle collector, whose passes it makes slower meanwhile.
        self.state = State()

    def _close_fds(self) -> None:
        fd, lock_fd, self.fd, self.lock_fd = self.fd, self.lock_fd, -1, -1
        if lock_fd >= 0:
            try:
                os.close(lock_fd)
            except OSError:
                pass
        if fd >= 0:
            self.commit.retire(fd)  # closed once an fsync running on it ends
        self.commit.close_retired()


def _decodes(lines: list[bytes]) -> bool:
    try:
        for line in lines:
            records.decode(line)
    except ValueError:
        return False
    return True
