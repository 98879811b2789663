"""Errors about the store file itself; each names the file and says what to do.

``StoreBroken``, ``DiskFull`` and ``LockTimeout`` are ``conveyor.BackendUnavailable``:
retrying later may succeed (the disk is freed, the lock is released), so a running
worker logs them and retries with backoff, a burst worker and the CLI exit 3.
"""

from __future__ import annotations

from conveyor import BackendUnavailable, ConveyorError

__all__ = [
    "StoreError",
    "ForeignFile",
    "NewerFormat",
    "CorruptStore",
    "StoreBroken",
    "DiskFull",
    "LockTimeout",
    "LinkRefused",
    "NotOwner",
    "BackendInUse",
    "TornTailWarning",
]


class StoreError(ConveyorError):
    """The store file or its directory cannot be used as asked."""


class ForeignFile(StoreError):
    """The file is not a conveyor-json store (empty, another format, another program's JSON)."""


class NewerFormat(StoreError):
    """The store was written in a format version this conveyor-json does not read."""


class CorruptStore(StoreError):
    """A record other than the last one is damaged; the store refuses to open rather than guess."""


class LinkRefused(StoreError):
    """The store path (or a file the store would create) is a symbolic link."""


class NotOwner(StoreError):
    """Compaction was asked of a user who neither owns the store nor can give it back."""


class StoreBroken(StoreError, BackendUnavailable):
    """A write or fsync failed: what is on disk is unknown, so this handle refuses further use.

    The backend opens a fresh handle (which re-reads and re-validates the file)
    on a later call, with backoff; until that succeeds every call raises this.
    """


class DiskFull(StoreBroken):
    """A write failed for lack of space (ENOSPC, EDQUOT); nothing of that write is visible."""


class LockTimeout(StoreError, BackendUnavailable):
    """Another process held the store's lock longer than ``lock_timeout``."""


class BackendInUse(ConveyorError):
    """A json backend was used from a second event loop while its first one still runs."""


class TornTailWarning(RuntimeWarning):
    """A partly written last record (a crash mid-write) was dropped when the store was read."""
