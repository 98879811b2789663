"""Compaction: rewriting a journal as its live state (a snapshot, see ``snapshot``).

The rewrite goes to a new temporary file (created exclusively, never through a
link) with the store's mode and owner, is fsynced, renamed over the store and
the directory fsynced, all under the lock; every payload reference is then
pointed at the new file (``State.remap``).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
from collections.abc import Iterable

from conveyor_json import files, records
from conveyor_json.commit import FileSync
from conveyor_json.entry import Moved
from conveyor_json.errors import StoreBroken, StoreError
from conveyor_json.lock import StoreLock
from conveyor_json.state import State

__all__ = ["Compaction"]

log = logging.getLogger("conveyor.json")

_CHUNK = 1 << 20
_TAIL_SHARE = 4
"""Compact once the records after the snapshot exceed a quarter of the live tasks: opening
then replays at most that many lines, and the rewrite still costs O(1) per operation."""
_CLOSE_SHARE = 8
"""A handle that closes with records after its snapshot over an eighth of the live tasks
compacts first: replaying a record costs about five times loading a task of a snapshot,
so a long fill leaves a store that opens at snapshot speed (the compaction was half due)."""


class Compaction:
    """The compaction of a ``Journal`` (a base of it, for the attributes it declares)."""

    path: str
    fd: int
    broken: str | None
    state: State
    commit: FileSync
    compact_threshold: int
    _compact_floor: int
    lock: StoreLock

    def _catch_up(self) -> None:
        raise NotImplementedError  # the journal's: read what other processes appended

    def _adopt(self, fd: int, ident: tuple[int, int], offset: int) -> None:
        raise NotImplementedError  # the journal's: take ``fd`` as the store file

    def _compact_due(self) -> bool:
        """Whether the journal should be rewritten: its superseded records, or the records
        after its snapshot (which opening replays one by one), outgrew the live tasks."""
        state = self.state
        bar = max(self.compact_threshold, len(state.tasks), self._compact_floor)
        return state.dead > bar or state.tail * _TAIL_SHARE > bar

    def _auto_compact(self, dead: int) -> None:
        # The operation that got here is written already: a failed compaction must
        # not fail it. Try again once the journal has grown as much again.
        try:
            self.compact(keep_final=True)
        except StoreError as exc:
            self._compact_floor = dead * 2
            log.warning("compacting %s failed, will retry later: %s", self.path, exc)

    def compact_before_close(self) -> None:
        """Compact a long journal tail as the handle closes, if the lock is free this instant
        (a close never waits for another process; a failure is logged, never raised)."""
        state = self.state
        if (
            self.broken is not None
            or state.tail <= self.compact_threshold
            or state.tail * _CLOSE_SHARE <= len(state.tasks)
            or not self.lock.enter_now()
        ):
            return
        try:
            self._catch_up()
            if self.broken is None:
                self.compact(keep_final=True)
        except StoreError as exc:
            log.warning("compacting %s as it closed failed: %s", self.path, exc)
        finally:
            self.lock.release()

    def compact(self, keep_final: bool) -> int:
        """Rewrite the journal as its live records (under the lock); return tasks dropped.

        The copy keeps the store's mode and owner; a user who does not own the
        store is refused (``NotOwner``) rather than take it over.
        """
        state = self.state
        info = os.fstat(self.fd)
        files.owner_check(self.path, info)
        header = records.header_line()
        moved: Moved = []
        lines = itertools.chain([header], state.compacted(keep_final, len(header), moved))
        try:
            self._replace_with(lines, mode=stat.S_IMODE(info.st_mode), owner=info)
        except ValueError as exc:  # a payload left in the file no longer reads back
            self.broken = str(exc)
            raise StoreBroken(self.broken) from None
        try:
            fd = files.open_store(self.path)
        except StoreError as exc:
            self.broken = f"cannot reopen {self.path} after compacting it: {exc}"
            raise StoreBroken(self.broken) from None
        info = os.fstat(fd)
        state.remap(moved, fd)
        self._adopt(fd, (info.st_dev, info.st_ino), info.st_size)
        dropped = 0 if keep_final else state.tasks.drop_final()
        state.records = len(state.tasks) + len(state.workers)
        self.commit.everything_synced()  # the new file was fsync'd before it replaced the old
        return dropped

    def _replace_with(
        self, lines: Iterable[bytes], *, mode: int, owner: os.stat_result | None
    ) -> None:
        folder = os.path.dirname(self.path)
        temp = files.temp_name(self.path)
        fd = files.create_exclusive(temp, mode)
        replaced = False
        try:
            try:
                with os.fdopen(fd, "wb", buffering=_CHUNK, closefd=False) as out:
                    out.writelines(lines)
                os.fchmod(fd, mode)
                if owner is not None:
                    files.give_back(fd, owner)
                os.fsync(fd)
            finally:
                os.close(fd)
            files.refuse_link(self.path)
            os.replace(temp, self.path)  # replaces a name, never writes through a link
            replaced = True
            files.fsync_dir(folder)
        except OSError as exc:
            try:
                os.unlink(temp)
            except OSError:
                pass
            # A full disk before the rename left the store as it was: this handle goes on
            # (its next append meets the full disk itself). After the rename, or on EIO, not.
            if replaced or exc.errno == errno.EIO:
                self.broken = f"rewriting {self.path} failed: {exc.strerror}"
            raise StoreError(f"cannot write {self.path}: {exc.strerror}") from None
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
