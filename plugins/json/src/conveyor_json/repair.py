"""Cutting a damaged store at its last valid record, never silently: ``python -m conveyor_json
repair PATH``.

After a power cut, what was written after the last fsync may read back as
garbage or holes, with whole records after it; the store then refuses to open
(``CorruptStore``) rather than guess. Every acknowledged (fsync'd) record lies
before the damage, so cutting there keeps them all. ``repair`` copies the whole
file to a backup first, cuts, and reports what it cut.
"""

from __future__ import annotations

import os
import stat
import time

import attrs

from conveyor_json import files, records
from conveyor_json.errors import StoreError
from conveyor_json.framing import scan
from conveyor_json.lock import StoreLock
from conveyor_json.state import State

__all__ = ["Repair", "inspect", "repair"]

_CHUNK = 1 << 20


@attrs.frozen
class Repair:
    """What ``repair`` found (and did): where the valid records end, and what lies after."""

    path: str
    size: int
    cut_at: int
    kept_records: int
    reason: str | None
    records_after: int
    backup: str | None = None

    def describe(self) -> str:
        """One paragraph for the operator."""
        if self.cut_at >= self.size:
            return f"{self.path}: every record is valid ({self.kept_records:,}); nothing to cut"
        cut = self.size - self.cut_at
        text = (
            f"{self.path}: cut at byte {self.cut_at:,} ({self.reason}); kept"
            f" {self.kept_records:,} records, cut {cut:,} bytes"
        )
        if self.records_after:
            text += f" holding {self.records_after:,} whole records that followed the damage"
        if self.backup is not None:
            text += f"; the original file is kept as {self.backup}"
        return text


def inspect(path: str) -> Repair:
    """Find the last valid record of the store at ``path`` (changes nothing)."""
    path = os.path.abspath(path)
    files.refuse_link(path)
    if not os.path.lexists(path):
        raise StoreError(f"no store at {path}: nothing to repair; check the path")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        size = os.fstat(fd).st_size
        first, newline, _ = os.pread(fd, min(4096, size), 0).partition(b"\n")
        records.check_header(path, first)
        if not newline:
            raise StoreError(f"{path}: the header line itself is damaged; nothing can be kept")
        state, kept, good, reason, after = State(), 0, len(first) + 1, None, 0
        for unit in scan(fd, good, size, records.MAX_LINE):
            if reason is None and unit.lines is not None:
                before = state.records
                try:
                    if len(unit.lines) == 1:
                        state.apply(records.decode(unit.lines[0]))
                    else:  # a group, perhaps a snapshot's (its tasks are counted)
                        state.apply_group(unit.lines, unit.stop)  # type: ignore[arg-type]
                except (KeyError, ValueError, TypeError) as exc:
                    reason = f"a record that cannot be read: {exc}"
                else:
                    kept += state.records - before
                    good = unit.stop  # type: ignore[assignment]
                    continue
            if reason is None:
                reason = unit.problem or "a record that the file ends inside of"
            elif unit.lines is not None:
                after += len(unit.lines)
        return Repair(path, size, good, kept, reason, after)
    finally:
        os.close(fd)


def repair(path: str, lock_timeout: float = 30.0) -> Repair:
    """Back the store up and cut it at its last valid record, under its lock."""
    path = os.path.abspath(path)
    files.refuse_link(path)
    if not os.path.lexists(path):
        # Checked before the lock: a mistyped path must not leave a lock file behind.
        raise StoreError(f"no store at {path}: nothing to repair; check the path")
    lock_fd = files.open_lock(path + ".lock", path)
    try:
        lock = StoreLock(lock_fd, path + ".lock", lock_timeout)
        lock.lock_blocking()
        found = inspect(path)
        if found.cut_at >= found.size:
            return found
        backup = _backup(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, found.cut_at)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(
                f"cannot cut {path}: {exc.strerror}; it is unchanged (backup {backup})"
            ) from None
        return attrs.evolve(found, backup=backup)
    finally:
        os.close(lock_fd)


def _backup(path: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    info = os.stat(path, follow_symlinks=False)
    backup = f"{path}.repair-{stamp}.bak"
    out = files.create_exclusive(backup, stat.S_IMODE(info.st_mode))
    try:
        source = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            offset = 0
            while chunk := os.pread(source, _CHUNK, offset):
                os.write(out, chunk)
                offset += len(chunk)
        finally:
            os.close(source)
        files.give_back(out, info)
        os.fsync(out)
    except OSError as exc:
        os.close(out)
        os.unlink(backup)
        raise StoreError(f"cannot back {path} up to {backup}: {exc.strerror}") from None
    os.close(out)
    files.fsync_dir(os.path.dirname(path))
    return backup
