"""Leases: who holds a claimed task, with which token, until when.

A backend that hands a task to a worker records ``lock_by`` (the worker's name),
a fresh ``lease_token`` and ``lease_until``; the worker's heartbeat moves
``lease_until`` forward. Every write back about that attempt (ack, retry,
reschedule) carries the token it was given, and the backend refuses it with
``StaleLease`` unless the stored task is still held under that same token. So a
worker that was presumed dead, and whose task was resumed and claimed again,
can never complete or clobber the newer attempt.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from conveyor.errors import StaleLease
from conveyor.status import Status
from conveyor.task import Task

__all__ = ["new_token", "check_lease", "DEFAULT_LEASE_SECONDS"]

DEFAULT_LEASE_SECONDS = 30.0

_prefix = os.urandom(6).hex()
_counter = itertools.count(1)


def new_token() -> str:
    """A lease token unique across processes (random prefix, then a counter)."""
    return f"{_prefix}{next(_counter):x}"


def check_lease(stored: Task[Any], claimed: Task[Any]) -> None:
    """Raise ``StaleLease`` unless ``stored`` is still held under ``claimed``'s token."""
    if stored.status is not Status.RUNNING and stored.status is not Status.QUEUED:
        raise StaleLease(
            f"task {stored.id} is {stored.status.value}, no longer held by"
            f" {claimed.lock_by!r}; this write is out of date and was refused"
        )
    if stored.lease_token != claimed.lease_token:
        raise StaleLease(
            f"task {stored.id} is now held by {stored.lock_by!r} under another lease;"
            f" the write from {claimed.lock_by!r} is out of date and was refused"
        )
