"""The worker: ``Worker`` and its lifecycle state.

Modules, each importing only those above it: ``handler``, ``turn``,
``threads``, ``shutdown`` (leaves), ``routes``, ``state``, ``entries``,
``horizon``, ``heartbeat``, ``poller``, ``lanes``, then ``worker`` (the ``Worker`` class).
"""

from __future__ import annotations

from conveyor.events import WorkerState
from conveyor.worker.worker import DEFAULT_CONCURRENCY, DEFAULT_GIVE_UP_AFTER, Worker

__all__ = ["Worker", "WorkerState", "DEFAULT_CONCURRENCY", "DEFAULT_GIVE_UP_AFTER"]
