"""Thread pools of the json backend's own (fsyncs, lock waits), made anew in a forked child.

A forked child inherits a ``ThreadPoolExecutor`` but none of its threads, and
the pool still counts the parent's idle ones: it starts no thread, so work sent
to it in the child waits for ever (a lock wait then ends as a false
``LockTimeout``, an fsync never returns). Every pool here is therefore dropped,
unshut (its threads are the parent's), in the child, which makes its own on
first use.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["ProcessPool"]


class ProcessPool:
    """A ``ThreadPoolExecutor`` made on first use, in this process only.

    Meant for module-level pools: each registers a fork hook that lives as long
    as the interpreter.
    """

    def __init__(self, workers: int, name: str) -> None:
        self.workers = workers
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        os.register_at_fork(after_in_child=self._forget)

    def get(self) -> ThreadPoolExecutor:
        """This process's pool (made on first use, and again in a forked child)."""
        pool = self._pool
        if pool is None:
            pool = self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
        return pool

    def _forget(self) -> None:
        self._pool = None
