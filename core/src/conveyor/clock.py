"""Time as backends read it, injectable so tests never sleep for leases or delays."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "ManualClock", "SYSTEM_CLOCK", "at"]


@runtime_checkable
class Clock(Protocol):
    """A source of the current time in seconds since the epoch."""

    def time(self) -> float:
        """Seconds since the epoch, as ``time.time()``."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """``time.time()``."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to: ``advance(seconds)`` or ``set(t)``."""

    def __init__(self, start: float | datetime | None = None) -> None:
        if isinstance(start, datetime):
            start = start.timestamp()
        self._now = time.time() if start is None else float(start)

    def time(self) -> float:
        """The clock's current reading."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._now += seconds

    def set(self, when: float | datetime) -> None:
        """Jump to ``when`` (not earlier than now)."""
        value = when.timestamp() if isinstance(when, datetime) else float(when)
        if value < self._now:
            raise ValueError("a clock only moves forward")
        self._now = value

    def now(self) -> datetime:
        """The reading as an aware UTC datetime."""
        return at(self._now)

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"


SYSTEM_CLOCK = SystemClock()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_fromtimestamp = datetime.fromtimestamp
_EXACT = float(1 << 33)
"""Below 2**33 s (the year 2242) half a float's step is under half a microsecond, so
``fromtimestamp`` of a whole number of microseconds over 1e6 gives back that number."""


def at(seconds: float) -> datetime:
    """Epoch ``seconds`` as an aware UTC datetime, rounded *down* to the microsecond.

    ``datetime.fromtimestamp`` rounds to the nearest microsecond, so a task
    stamped "now" could land a fraction after the clock's reading and never be
    ready under a stopped clock. Flooring keeps ``at(t).timestamp() <= t``.
    """
    # Every claim and push reads this: float arithmetic and one C call, where
    # building a timedelta and adding it to the epoch costs half as much again.
    micros = seconds * 1_000_000 // 1
    if micros / 1_000_000 > seconds:  # the product itself rounded up across a boundary
        micros -= 1
    if 0 <= seconds < _EXACT:
        return _fromtimestamp(micros / 1_000_000, UTC)
    return _at(seconds)


def _at(seconds: float) -> datetime:
    micros = math.floor(seconds * 1_000_000)
    if micros / 1_000_000 > seconds:
        micros -= 1
    return _EPOCH + timedelta(microseconds=micros)
