"""Errors about the store file itself; each names the file and says what to do."""

from __future__ import annotations

from conveyor import ConveyorError

__all__ = [
    "StoreError",
    "ForeignFile",
    "NewerFormat",
    "CorruptStore",
    "StoreBroken",
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


class StoreBroken(StoreError):
    """A write or fsync failed: what is on disk is unknown, so this handle refuses further use."""


class TornTailWarning(RuntimeWarning):
    """A partly written last record (a crash mid-write) was dropped when the store was read."""
