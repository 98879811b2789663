"""The journal file: creating, reading, locking, appending, syncing and compacting it.

One ``Journal`` is one open handle on a store file. Every operation runs as a
short synchronous critical section under an exclusive ``flock`` on
``<path>.lock`` (a separate file, so it survives the store being replaced by
a compaction): catch up with what other processes appended, decide, append,
release. ``fsync`` happens after the lock is released, and concurrent
operations of this process share one (group commit).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import stat
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from conveyor import BackendClosed, TaskId
from conveyor_json import records
from conveyor_json.commit import GroupCommit
from conveyor_json.errors import CorruptStore, StoreBroken, StoreError, TornTailWarning
from conveyor_json.state import FINAL, State

__all__ = ["Journal", "Section"]

log = logging.getLogger("conveyor_json")

T = TypeVar("T")
Section = Callable[[State], tuple[list[dict[str, Any]], T]]
"""A critical section: reads the caught-up state, returns the records to append and a result."""

_CHUNK = 1 << 20
_HEADER_MAX = 4096
_MODE = 0o600


class Journal:
    """An open store file shared with other handles and processes through the lock file."""

    def __init__(self, path: str, *, fsync: bool = True, compact_threshold: int = 10_000) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.lock_path = self.path + ".lock"
        self.fsync = fsync
        self.compact_threshold = compact_threshold
        self.users = 0
        self.broken: str | None = None
        self.closed = False
        self.fd = -1
        self.ident = (0, 0)
        self.offset = 0
        self.state = State()
        self.ready_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.final_waiters: dict[TaskId, list[asyncio.Future[None]]] = {}
        self.commit = GroupCommit(self, fsync)
        self._compact_floor = 0
        self._gate: asyncio.Lock | None = None
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise StoreError(
                f"cannot open store {self.path}: directory {folder} does not exist;"
                " create it first (the json backend does not create directories)"
            )
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open store {self.path}: it is a directory; name a file")
        try:
            self.lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)
        except OSError as exc:
            raise StoreError(
                f"cannot create or open the lock file {self.lock_path}: {exc.strerror};"
                f" the store's directory {folder} must be writable by this user"
            ) from None
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            try:
                if not os.path.lexists(self.path):
                    self._create()
                self._load()
            finally:
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
        except BaseException:
            self._close_fds()
            raise

    # --- opening ------------------------------------------------------------------

    def _create(self) -> None:
        """Make a new store atomically: header into a temp file, fsync, rename, fsync dir."""
        self._replace_with([records.header_line()], mode=_MODE)

    def _load(self) -> None:
        """(Re)read the whole file into a fresh state (under the lock)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreError(
                f"cannot open store {self.path} for reading and writing: {exc.strerror}"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"cannot open store {self.path}: it is not a regular file")
            head = os.pread(fd, min(_HEADER_MAX, info.st_size), 0)
            first, newline, _ = head.partition(b"\n")
            records.check_header(self.path, first)
            if not newline:
                raise CorruptStore(
                    records.damaged(self.path, "line 1", "the header line has no end")
                )
            state = State(self._wake_ready, self._wake_final)
            end = self._read(fd, state, len(first) + 1, info.st_size, opening=True)
        except BaseException:
            os.close(fd)
            raise
        self._adopt(fd, (info.st_dev, info.st_ino), end)
        self.state = state
        for waiters in list(self.ready_waiters.values()) + list(self.final_waiters.values()):
            _wake_all(waiters)

    def _adopt(self, fd: int, ident: tuple[int, int], offset: int) -> None:
        if self.fd >= 0:
            self.commit.retire(self.fd)
        self.fd, self.ident, self.offset = fd, ident, offset

    def _read(self, fd: int, state: State, start: int, end: int, *, opening: bool) -> int:
        """Apply the complete lines in ``[start, end)``; return where the good ones stop.

        A damaged or unfinished last line (a crash mid-write) is cut off the
        file with a warning; damage before it raises ``CorruptStore``, naming
        the line (when reading the whole file) or its byte offset.
        """
        pos = read_at = start
        line_no = 2
        rest = b""
        bad: str | None = None
        while read_at < end:
            chunk = os.pread(fd, min(_CHUNK, end - read_at), read_at)
            if not chunk:
                break
            read_at += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if bad is not None:
                    raise CorruptStore(bad)
                try:
                    state.apply(records.decode(line))
                except (KeyError, ValueError, TypeError) as exc:
                    where = f"line {line_no}" if opening else f"the record at byte {pos}"
                    reason = str(exc) if isinstance(exc, ValueError) else repr(exc)
                    bad = records.damaged(self.path, where, reason)
                    if not opening:
                        raise CorruptStore(bad) from None
                else:
                    pos += len(line) + 1
                line_no += 1
            if len(rest) > records.MAX_LINE:
                where = f"line {line_no}" if opening else f"the record at byte {pos}"
                reason = f"longer than {records.MAX_LINE:,} bytes"
                raise CorruptStore(records.damaged(self.path, where, reason))
        if bad is not None and rest:
            raise CorruptStore(bad)
        if pos < end:
            self._cut(fd, pos, end)
        return pos

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

    async def run(self, section: Section[T]) -> tuple[T, int]:
        """Run ``section`` under the lock after catching up; append its records.

        Returns its result and the write mark to pass to ``durable``. The
        section never awaits, so no other coroutine of this handle can be inside
        one meanwhile; only a wait for another process's lock goes through the
        gate (a thread holds the lock for us while we wait, which a second
        coroutine on this same descriptor must not mistake for its own).
        """
        gate = self._gate
        if (gate is None or not gate.locked()) and self._try_lock():
            return self._locked(section)
        if gate is None:
            gate = self._gate = asyncio.Lock()
        async with gate:
            if not self._try_lock():
                await asyncio.get_running_loop().run_in_executor(
                    None, fcntl.flock, self.lock_fd, fcntl.LOCK_EX
                )
            return self._locked(section)

    def _try_lock(self) -> bool:
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _locked(self, section: Section[T]) -> tuple[T, int]:
        try:
            self._usable()
            self._catch_up()
            new, result = section(self.state)
            if new:
                self._append(new)
                dead = self.state.dead
                if dead > max(self.compact_threshold, len(self.state.tasks), self._compact_floor):
                    self._auto_compact(dead)
            return result, self.commit.written
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def _usable(self) -> None:
        if self.closed:
            raise BackendClosed(f"the json store {self.path} was closed; open it again")
        if self.broken is not None:
            raise StoreBroken(self.broken)

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

    def _append(self, new: list[dict[str, Any]]) -> None:
        data = b"".join([records.encode(r) for r in new])
        if len(data) > records.MAX_LINE:
            for record in new:
                if len(records.encode(record)) > records.MAX_LINE:
                    raise StoreError(
                        f"record for task {record.get('id')} is over the {records.MAX_LINE:,}"
                        " byte limit of a store line; store less per task"
                    )
        try:
            written = os.write(self.fd, data)
            if written < len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.broken = (
                f"writing to {self.path} failed ({exc.strerror}); what reached the disk is"
                " unknown, so this handle refuses further use. Reopen the store"
            )
            raise StoreBroken(self.broken) from exc
        self.offset += len(data)
        self.commit.wrote()
        apply = self.state.apply
        try:
            for record in new:
                apply(record)
        except (KeyError, ValueError, TypeError) as exc:
            # Written but not understood: replaying the file would fail the same way.
            self.broken = (
                f"a record just written to {self.path} cannot be read back ({exc!r});"
                " this is a bug in conveyor-json, please report it with the file"
            )
            raise StoreBroken(self.broken) from exc

    async def durable(self, mark: int) -> None:
        """Return once write ``mark`` (from ``run``) is on disk (see ``GroupCommit``)."""
        await self.commit.durable(mark)

    # --- compaction -----------------------------------------------------------------

    def _auto_compact(self, dead: int) -> None:
        # The operation that got here is written already: a failed compaction must
        # not fail it. Try again once the journal has grown as much again.
        try:
            self.compact(keep_final=True)
        except StoreError as exc:
            self._compact_floor = dead * 2
            log.warning("compacting %s failed, will retry later: %s", self.path, exc)

    def compact(self, keep_final: bool) -> int:
        """Rewrite the journal as its live records (under the lock); return tasks dropped."""
        state = self.state
        lines: list[bytes] = [records.header_line()]
        for record in state.compacted(keep_final):
            lines.append(records.encode(record))
        mode = stat.S_IMODE(os.fstat(self.fd).st_mode)
        self._replace_with(lines, mode=mode)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            self.broken = f"cannot reopen {self.path} after compacting it: {exc.strerror}"
            raise StoreBroken(self.broken) from None
        info = os.fstat(fd)
        self._adopt(fd, (info.st_dev, info.st_ino), info.st_size)
        dropped = [tid for tid, e in state.tasks.items() if not keep_final and e.status in FINAL]
        for tid in dropped:
            del state.tasks[tid]
        state.records = len(lines) - 1
        self.commit.everything_synced()  # the new file was fsync'd before it replaced the old
        return len(dropped)

    def _replace_with(self, lines: Iterable[bytes], *, mode: int) -> None:
        folder = os.path.dirname(self.path)
        temp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise StoreError(
                f"cannot create {temp}: {exc.strerror}; the store's directory {folder} must"
                " be writable by this user"
            ) from None
        try:
            try:
                with os.fdopen(fd, "wb", buffering=_CHUNK, closefd=False) as out:
                    out.writelines(lines)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
            _fsync_dir(folder)
        except OSError as exc:
            if os.path.exists(temp):
                os.unlink(temp)
            if exc.errno in (errno.EIO, errno.ENOSPC, errno.EDQUOT):
                self.broken = f"rewriting {self.path} failed: {exc.strerror}"
            raise StoreError(f"cannot write {self.path}: {exc.strerror}") from None

    # --- waking waiters ---------------------------------------------------------------

    def _wake_ready(self, queue: str) -> None:
        waiters = self.ready_waiters.get(queue)
        if waiters:
            _wake_all(waiters)

    def _wake_final(self, task_id: TaskId) -> None:
        waiters = self.final_waiters.pop(task_id, None)
        if waiters:
            _wake_all(waiters)

    # --- closing ------------------------------------------------------------------------

    async def close(self) -> None:
        """Wait for a running fsync, then close the file and the lock file."""
        if self.closed:
            return
        await self.commit.drain()
        self.closed = True
        self._close_fds()
        # Drop the index now: it refers back to this handle, so it would otherwise
        # wait for the cycle collector, whose passes it makes slower meanwhile.
        self.state = State()

    def _close_fds(self) -> None:
        for fd in (self.fd, getattr(self, "lock_fd", -1)):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.fd = -1
        if hasattr(self, "commit"):
            self.commit.close_retired()


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
