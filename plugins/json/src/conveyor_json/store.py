"""The open journal behind a backend (and its ``make_shared`` siblings), reopened after it breaks.

A journal whose write or fsync failed refuses further use (``StoreBroken``):
what reached the disk is unknown. Rather than keep a zombie handle, the next
call opens a fresh one, which re-reads and re-validates the file (a torn write
is cut, a damaged record refuses to open). While that fails, calls raise at
once and the next attempt waits longer (backoff, up to ``_MAX_PAUSE``).

The journal itself is shared with the other backends of the process on the same
file (``shared``); a ``Store`` is one backend's (and its ``make_shared``
siblings') use of it: its event loop, and how it waits for the disk.
"""

from __future__ import annotations

import asyncio
import threading
import time

from conveyor_json import shared
from conveyor_json.commit import GroupCommit
from conveyor_json.config import JsonConfig
from conveyor_json.errors import BackendInUse, DiskFull, StoreBroken
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
        self.commit = GroupCommit(config.fsync)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._adopting = threading.Lock()
        self._pause = _FIRST_PAUSE
        self._retry_at = 0.0

    def _open(self) -> Journal:
        config = self.config
        return shared.open_journal(
            config.path,
            compact_threshold=config.compact_threshold,
            lock_timeout=config.lock_timeout,
        )

    def _check_loop(self) -> None:
        """Refuse a second running event loop; adopt a new one once the old has stopped."""
        loop = asyncio.get_running_loop()
        with self._adopting:
            old = self.loop
            if old is not None and old is not loop and old.is_running():
                raise BackendInUse(
                    "this json backend is in use by another event loop that is still running"
                    " (another thread's asyncio.run?); a backend belongs to one event loop at"
                    " a time: open one backend per thread, or call it from one loop"
                )
            self.loop = loop
            self.commit.reset()

    def ready(self, loop: asyncio.AbstractEventLoop | None = None) -> Journal | None:
        """The journal, if it can be used as it is from this loop (``current`` otherwise);
        ``loop``: the running loop, when the caller has it already."""
        journal = self.journal
        if journal.broken is None and self.loop is (loop or asyncio.get_running_loop()):
            return journal
        return None

    async def current(self) -> Journal:
        """The journal to use: this one, or a fresh one if this one broke."""
        journal = self.journal
        if self.loop is not asyncio.get_running_loop():
            if journal.closed:
                return journal  # raises BackendClosed when used
            self._check_loop()
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
        fresh.take_waiters(journal)
        self.journal = fresh
        self._pause = _FIRST_PAUSE
        shared.release(journal)
        return fresh

    async def close(self) -> None:
        """One user fewer; let the journal go after the last."""
        self.users -= 1
        if self.users == 0:
            shared.release(self.journal)
