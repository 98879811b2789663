"""Task identifiers that sort by creation time."""

from __future__ import annotations

import base64
import os
import threading
import time

__all__ = ["TaskId", "TaskIdLike"]

_ALPHABET = frozenset("0123456789abcdefghijklmnopqrstuv")
_PAIRS = [
    a + b for a in "0123456789abcdefghijklmnopqrstuv" for b in "0123456789abcdefghijklmnopqrstuv"
]
_LENGTH = 26


class TaskId(str):
    """A task id: 26 characters of base32hex, sortable by creation time.

    The first 48 bits are the creation time in milliseconds, the other 80 a
    counter that starts at a random point each millisecond and only grows, so
    ids made in one process sort in the order they were made (FIFO) and ids
    from different processes sort by millisecond. Being a ``str``, an id is its
    own string form: ``TaskId.parse(str(tid)) == tid``.
    """

    __slots__ = ()

    @classmethod
    def new(cls) -> TaskId:
        """Make a fresh id, greater than every id this process made before."""
        return cls._from_int(_next_value())

    @classmethod
    def parse(cls, value: TaskIdLike) -> TaskId:
        """Accept a ``TaskId`` or its string; raise ``ValueError`` on anything else."""
        if type(value) is TaskId:
            return value
        if not isinstance(value, str):
            raise TypeError(f"a task id is a string, not {type(value).__name__}")
        text = value.strip().lower()
        if len(text) != _LENGTH or not _ALPHABET.issuperset(text):
            raise ValueError(
                f"{value!r} is not a task id: expected {_LENGTH} characters of 0-9 and a-v"
            )
        return str.__new__(cls, text)

    @property
    def timestamp(self) -> float:
        """Creation time, seconds since the epoch (millisecond precision)."""
        return (self._to_int() >> 80) / 1000.0

    @classmethod
    def _from_int(cls, value: int) -> TaskId:
        # The base32hex text of the 16 bytes, lower case, without padding: 130 bits
        # (the value shifted left by 2) read as 13 pairs of characters. A table of
        # pairs is ~3x faster than base64.b32hexencode, which is pure Python.
        v, t = value << 2, _PAIRS
        text = (
            t[v >> 120 & 1023] + t[v >> 110 & 1023] + t[v >> 100 & 1023] + t[v >> 90 & 1023]
            + t[v >> 80 & 1023] + t[v >> 70 & 1023] + t[v >> 60 & 1023] + t[v >> 50 & 1023]
            + t[v >> 40 & 1023] + t[v >> 30 & 1023] + t[v >> 20 & 1023] + t[v >> 10 & 1023]
            + t[v & 1023]
        )  # fmt: skip
        return str.__new__(cls, text)

    def _to_int(self) -> int:
        raw = base64.b32hexdecode(self.upper() + "======")
        return int.from_bytes(raw, "big")

    def __repr__(self) -> str:
        return f"TaskId({str.__repr__(self)})"


TaskIdLike = TaskId | str

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_COUNTER_MASK = (1 << 80) - 1


def _next_value() -> int:
    global _last_ms, _counter
    now_ms = time.time_ns() // 1_000_000
    with _lock:
        if now_ms > _last_ms:
            _last_ms = now_ms
            # Start low in the 80-bit space so the counter cannot overflow in a millisecond.
            _counter = int.from_bytes(os.urandom(8), "big")
        else:
            _counter = (_counter + 1) & _COUNTER_MASK
        return (_last_ms << 80) | _counter
