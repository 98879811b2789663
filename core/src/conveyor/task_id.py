"""Task identifiers that sort by creation time."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

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
        return cls(_next_text())

    @classmethod
    def _many(cls, count: int) -> list[TaskId]:
        """``count`` fresh ids in the order made, for a bulk push: one clock read, one lock."""
        return _next_ids(count, cls)

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
T = TypeVar("T")

_lock = threading.Lock()
_time_ns = time.time_ns
_urandom = os.urandom
_last_ms = 0
# The counter is kept as its low 8 bits and the rest, with the text of the id but its
# last two characters (the rest, read with the millisecond): 255 ids in 256 then
# cost an addition, a table lookup and a concatenation, not thirteen of each.
_high = 0
_low = 0
_head = ""


def _start(now_ms: int, fresh: bytes | None) -> None:
    """A new millisecond: the counter starts at a random point (the caller holds ``_lock``).

    ``fresh``: 8 random bytes the caller read before taking the lock, or ``None``."""
    global _last_ms, _high, _low, _head
    _last_ms = now_ms
    # Start low in the 80-bit space so the counter cannot overflow in a millisecond.
    counter = int.from_bytes(os.urandom(8) if fresh is None else fresh, "big")
    _high, _low = counter >> 8, counter & 255
    _head = TaskId._from_int((now_ms << 80) | (_high << 8))[:-2]


def _carry() -> None:
    """The low 8 bits wrapped: move the rest on (the caller holds ``_lock``)."""
    global _high, _low, _head
    _high += 1
    _low = 0
    _head = TaskId._from_int((_last_ms << 80) | (_high << 8))[:-2]


def _after_fork_in_child() -> None:
    """A forked child moves its counter a random step on: else, within the millisecond of
    the fork, parent and child would both count on from the same point, to the same ids.
    A step (not a fresh start) keeps the child's ids above those made before the fork."""
    global _lock, _acquire, _release, _high
    _lock = threading.Lock()  # another thread may have held it at the fork
    _acquire, _release = _lock.acquire, _lock.release
    if _last_ms:
        _high += 1 + (int.from_bytes(os.urandom(5), "big") << 8)
        _carry()


os.register_at_fork(after_in_child=_after_fork_in_child)

_acquire, _release = _lock.acquire, _lock.release


def _next_text() -> str:
    global _low
    now_ms = _time_ns() // 1_000_000
    # os.urandom lets go of the GIL for its system call: read under the lock, it kept
    # every other thread making an id waiting (16 pushing threads: 5% of their time).
    # Read before it (the unlocked look at _last_ms is only a hint), it waits alone.
    fresh = _urandom(8) if now_ms > _last_ms else None
    _acquire()  # not ``with``: its enter and exit calls cost as much as the rest
    try:
        if now_ms > _last_ms:
            _start(now_ms, fresh)
        elif _low < 255:
            _low += 1
        else:
            _carry()
        return _head + _PAIRS[_low << 2]
    finally:
        _release()


def _next_ids(count: int, make: Callable[[str], T]) -> list[T]:
    """``count`` ids in a row, each made by ``make`` from its text."""
    global _low
    ids: list[T] = []
    if count <= 0:
        return ids
    append, pairs = ids.append, _PAIRS
    now_ms = _time_ns() // 1_000_000
    fresh = _urandom(8) if now_ms > _last_ms else None  # outside the lock, as above
    with _lock:
        if now_ms > _last_ms:
            _start(now_ms, fresh)
        elif _low < 255:
            _low += 1
        else:
            _carry()
        low, head = _low, _head
        append(make(head + pairs[low << 2]))
        for _ in range(count - 1):
            if low < 255:
                low += 1
            else:
                _low = low
                _carry()
                low, head = _low, _head
            append(make(head + pairs[low << 2]))
        _low = low
    return ids
