"""Exceptions a handler raises to decide its task's fate itself."""

from __future__ import annotations

from datetime import timedelta

__all__ = ["Abort", "RetryAfter"]


class Abort(Exception):
    """Give the task up now: it becomes ``KILLED`` with this message, never retried."""


class RetryAfter(Exception):
    """Run the task again after ``delay`` (seconds or a timedelta); the attempt still counts.

    The backend kills the task instead once it has used ``max_attempts``.
    """

    def __init__(self, delay: float | timedelta, reason: str = "") -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if not seconds >= 0:
            raise ValueError(f"RetryAfter needs a delay of zero or more seconds, not {delay!r}")
        self.delay = seconds
        self.reason = reason
        super().__init__(reason or f"retry after {seconds:g} s")
