"""Appending to the journal: an operation's records encoded, written with one ``write``, applied.

A base of ``Journal`` (for the attributes it declares). The records of one
operation are one line, or one group of several (see ``framing``); a write that
fails is taken back and breaks the handle (``DiskFull`` or ``StoreBroken``).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from conveyor_json import records
from conveyor_json.commit import FileSync
from conveyor_json.errors import DiskFull, StoreBroken, StoreError
from conveyor_json.framing import frame
from conveyor_json.state import State

__all__ = ["Appending"]

_FULL = (errno.ENOSPC, errno.EDQUOT)


class Appending:
    """How a ``Journal`` appends records (a base of it, for what it declares)."""

    path: str
    fd: int
    offset: int
    full: bool
    broken: str | None
    state: State
    commit: FileSync

    def _append(self, new: list[dict[str, Any]]) -> None:
        self._write_out(self._encoded(new))
        self._apply(new)

    def _encoded(self, new: list[dict[str, Any]]) -> bytes:
        """The bytes of one operation's records: a line, or a group of several."""
        if len(new) == 1:
            line = records.encode(new[0])
            if len(line) <= records.MAX_LINE:
                return line
        lines = [records.encode(r) for r in new]
        for line, record in zip(lines, new, strict=True):
            if len(line) > records.MAX_LINE:
                raise StoreError(
                    f"record for task {record.get('id')} is over the {records.MAX_LINE:,}"
                    " byte limit of a store line; store less per task"
                )
        try:
            return frame(lines)  # several records: one group, visible whole or not at all
        except ValueError as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    def _write_out(self, data: bytes) -> None:
        """Append ``data`` with one ``write`` (the rest of a short one after it) and count it."""
        try:
            written = os.write(self.fd, data)
            if written < len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self._write_failed(exc)
        self.offset += len(data)
        self.commit.wrote()

    def _apply(self, new: list[dict[str, Any]]) -> None:
        apply = self.state.apply
        try:
            for record in new:
                apply(record)
        except (KeyError, ValueError, TypeError) as exc:
            # Not understood: replaying the file would fail the same way.
            self.broken = (
                f"a record just written to {self.path} cannot be read back ({exc!r});"
                " this is a bug in conveyor-json, please report it with the file"
            )
            raise StoreBroken(self.broken) from exc

    def _write_failed(self, exc: OSError) -> None:
        # Take back the part that was written (a reader would drop it anyway: a torn
        # line or group is never applied), then refuse this handle.
        try:
            os.ftruncate(self.fd, self.offset)
        except OSError:
            pass
        if exc.errno in _FULL:
            self.full = True
            self.broken = (
                f"the disk holding {self.path} is full ({exc.strerror}); nothing of the"
                " failed write is visible. Free some space: the store reopens by itself"
            )
            raise DiskFull(self.broken) from exc
        self.broken = (
            f"writing to {self.path} failed ({exc.strerror}); what reached the disk is"
            " unknown, so this handle refuses further use and the store is reopened"
        )
        raise StoreBroken(self.broken) from exc
