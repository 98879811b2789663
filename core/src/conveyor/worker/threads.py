"""The threads that run plain-function handlers.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the
interpreter exits, so one handler stuck in a blocking call would keep the
process alive after the worker stopped (and after a second Ctrl-C). These
threads are daemons: once the worker has released what they ran, nothing
waits for them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["HandlerThreads"]

_Job = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]


class HandlerThreads(Executor):
    """Up to ``size`` daemon threads, started as jobs need them."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args)`` in one of the threads; its future carries the result."""
        if kwargs:
            raise TypeError("HandlerThreads.submit takes positional arguments only")
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot run a handler after the worker's threads shut down")
            self._jobs.put((future, fn, args))
            # A thread that finished a job counts itself idle; start a new one only if none is.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _work(self) -> None:
        jobs, idle = self._jobs, self._idle
        while True:
            job = jobs.get()
            if job is None:
                jobs.put(None)  # pass the stop on to the next thread
                return
            future, fn, args = job
            del job
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # a handler's SystemExit fails its task only
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                    del result
            del future, fn, args
            idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more jobs; let idle threads end. Threads still running are not waited for
        unless ``wait``."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        job[0].cancel()
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
