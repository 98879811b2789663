"""The open journal behind a backend (and its ``make_shared`` siblings), reopened after it breaks.

A journal whose write or fsync failed refuses further use (``StoreBroken``):
what reached the disk is unknown. Rather than keep a zombie handle, the next
call opens a fresh one, which re-reads and re-validates the file (a torn write
is cut, a damaged record refuses to open). While that fails, calls raise at
once and the next attempt waits longer (backoff, up to ``_MAX_PAUSE``).
"""

from __future__ import annotations

import time

from conveyor_json.config import JsonConfig
from conveyor_json.errors import DiskFull, StoreBroken
from conveyor_json.journal import Journal

__all__ = ["Store"]

_FIRST_PAUSE = 0.05
_MAX_PAUSE = 5.0


class Store:
    """The current ``Journal`` of one store file and how many backends use it."""

    def __init__(self, config: JsonConfig) -> None:
        self.config = config
        self.users = 0
        self.journal = self._open()
        self._pause = _FIRST_PAUSE
        self._retry_at = 0.0

    def _open(self) -> Journal:
        config = self.config
        return Journal(
            config.path,
            fsync=config.fsync,
            compact_threshold=config.compact_threshold,
            lock_timeout=config.lock_timeout,
        )

    async def current(self) -> Journal:
        """The journal to use: this one, or a fresh one if this one broke."""
        journal = self.journal
        if journal.broken is None or journal.closed:
            return journal
        kind = DiskFull if journal.full else StoreBroken
        now = time.monotonic()
        if now < self._retry_at:
            raise kind(f"{journal.broken} (next reopen in {self._retry_at - now:.2g} s)")
        try:
            fresh = self._open()
        except Exception as exc:
            self._retry_at = now + self._pause
            self._pause = min(self._pause * 2, _MAX_PAUSE)
            raise kind(f"{journal.broken}; reopening it failed: {exc}") from exc
        fresh.ready_waiters, fresh.final_waiters = journal.ready_waiters, journal.final_waiters
        journal.ready_waiters, journal.final_waiters = {}, {}
        self.journal = fresh
        self._pause = _FIRST_PAUSE
        await journal.close()
        return fresh

    async def close(self) -> None:
        """One user fewer; close the journal after the last."""
        self.users -= 1
        if self.users <= 0:
            await self.journal.close()
