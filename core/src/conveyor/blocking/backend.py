"""``BlockingBackend``: the ``Backend`` facade with plain methods, for code with no event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.errors import BackendClosed
from conveyor.expose import Filter, QueueInfo, RunningWorker, Statistic
from conveyor.task import Task, TaskResult
from conveyor.task_id import TaskId, TaskIdLike

from . import loop as _loop
from .lanes import Lanes

__all__ = ["BlockingBackend", "open", "DEFAULT_LANES"]

T = TypeVar("T")

DEFAULT_LANES = 4
"""Direct lanes (see ``conveyor.blocking.lanes``) of a backend opened by URL."""

_IN_PROCESS = frozenset({"memory"})
"""Backends whose every open is a store of its own: a second handle would not see it."""

Opener = Callable[[], Backend]


async def _push(backend: Backend, tasks: Sequence[Task[bytes]], weak: bool) -> Sequence[TaskId]:
    # The hook is called here, on the loop: a plugin may look up the running loop
    # as soon as it is called, before the awaitable it returns is awaited.
    hook = backend.hooks.push_weak if weak else backend.hooks.push
    return await hook(tasks)


class BlockingBackend:
    """A backend for synchronous code: every ``Backend`` method, blocking until done.

    ``BlockingBackend("redis://localhost/0?queue=mail")`` opens by URL (keyword
    configuration as for ``conveyor.open``); ``BlockingBackend(factory)`` takes a
    callable returning a ``Backend``. The backend is opened on first use and
    runs on a private event loop in a daemon thread (one per process), so any
    number of threads may call it at once. In a forked child (gunicorn
    ``--preload``) it reopens itself from the URL or factory on first use: the
    parent's loop and connections are never touched. It is closed at
    interpreter exit if ``close()`` was not called.
    """

    def __init__(self, target: str | Opener, /, *, lanes: int | None = None, **config: Any) -> None:
        if isinstance(target, Backend):
            raise TypeError(
                "BlockingBackend takes a URL or a factory returning a Backend, not an opened"
                " Backend: an opened one may hold connections bound to another event loop."
                " Pass e.g. BlockingBackend('json://tasks.json') or"
                " BlockingBackend(lambda: conveyor.open(url))"
            )
        if isinstance(target, str):
            url = target

            def opener() -> Backend:
                import conveyor

                return conveyor.open(url, **config)

            self._open: Opener = opener
        elif callable(target):
            if config:
                raise TypeError("keyword configuration goes with a URL, not with a factory")
            self._open = target
        else:
            raise TypeError(f"BlockingBackend takes a URL or a factory, not {target!r:.80}")
        if lanes is None:
            scheme = target.partition(":")[0] if isinstance(target, str) else ""
            lanes = DEFAULT_LANES if isinstance(target, str) and scheme not in _IN_PROCESS else 0
        if type(lanes) is not int or lanes < 0:
            raise ValueError(f"lanes must be a whole number of zero or more, not {lanes!r}")
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._on_loop = False  # whether the backend was used on the private loop
        self._lanes = Lanes(self._open, lanes) if lanes else None
        self._closed = False
        _loop.track(self)

    # --- opening, fork and exit -----------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The async ``Backend`` underneath (opened on first use; for this process only)."""
        backend = self._backend
        if backend is not None:
            return backend
        with self._lock:
            if self._closed:
                raise BackendClosed("this BlockingBackend was closed; open a new one")
            if self._backend is None:
                opened = self._open()
                if not isinstance(opened, Backend):
                    raise TypeError(
                        f"the BlockingBackend factory returned {opened!r:.80}, not a Backend"
                    )
                self._backend = opened
            return self._backend

    def _run(self, coroutine: Awaitable[T]) -> T:
        if self._closed:
            _loop._discard(coroutine)
            raise BackendClosed("this BlockingBackend was closed; open a new one")
        self._on_loop = True
        return _loop.current().run(coroutine)

    def _push(self, tasks: Sequence[Task[bytes]], weak: bool) -> Sequence[TaskId]:
        lanes = self._lanes
        if lanes is not None and not self._closed:
            done, ids = lanes.run(lambda backend: _push(backend, tasks, weak))
            if done and ids is not None:
                return ids
        return self._run(_push(self.backend, tasks, weak))

    def _forget(self) -> None:
        """In a forked child: drop the parent's backend unclosed (the parent still uses it)."""
        self._lock = threading.Lock()
        if self._lanes is not None:
            self._lanes.forget()
        if self._backend is not None:
            _loop._abandoned.append(self._backend)
            self._backend = None
        self._on_loop = False

    def _close_quietly(self, timeout: float) -> None:
        if not self._closed:
            with contextlib.suppress(Exception):  # at exit there is no one left to tell
                self._shut(timeout)

    def _shut(self, timeout: float | None) -> None:
        with self._lock:
            backend, self._backend, self._closed = self._backend, None, True
        if self._lanes is not None:
            self._lanes.close()
        if backend is None:
            return
        if self._on_loop:
            loop_thread = _loop.running()
            if loop_thread is not None:
                loop_thread.run(backend.aclose(), timeout)
        elif asyncio._get_running_loop() is None:
            # Only ever used by lanes (for encoding): bound to no loop, so any loop
            # closes it, and none needs starting.
            asyncio.run(backend.aclose())
        else:
            _loop.current().run(backend.aclose(), timeout)

    def close(self) -> None:
        """Close the backend (safe to call twice); later calls raise ``BackendClosed``."""
        self._shut(None)

    def __enter__(self) -> BlockingBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- capabilities -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The backend's name (``json``, ``redis``, …)."""
        return self.backend.name

    @property
    def queue(self) -> str:
        """The default queue."""
        return self.backend.queue

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the backend can do."""
        return self.backend.capabilities

    def supports(self, capability: Capability | str) -> bool:
        """Whether the backend has ``capability``."""
        return self.backend.supports(capability)

    def require(self, *capabilities: Capability | str) -> None:
        """Raise ``UnsupportedCapability`` for the first of ``capabilities`` it lacks."""
        self.backend.require(*capabilities)

    def now(self) -> datetime:
        """The backend clock's current time."""
        return self.backend.now()

    def get_queue(self) -> str:
        """The backend's queue name."""
        return self.backend.get_queue()

    def make_shared(self, queue: str) -> BlockingBackend:
        """Another blocking backend for ``queue`` over the same store and connection."""
        return BlockingBackend(lambda: self.backend.make_shared(queue))

    # --- TaskSink -----------------------------------------------------------------------

    def push(
        self,
        args: Any,
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> TaskId:
        """Store one task and return its id (as ``Backend.push``)."""
        backend = self.backend
        # Encoded and checked here, in the caller's thread: a bad payload fails at
        # once, and the loop thread only does the store's part.
        task = backend._new_task(
            args, queue, run_at, delay, priority, max_attempts, meta, name, False
        )
        return self._push([task], False)[0]

    def push_weak(
        self,
        args: Any,
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> TaskId:
        """Like ``push`` for a payload of any type, bypassing ``args_type``."""
        backend = self.backend
        task = backend._new_task(
            args, queue, run_at, delay, priority, max_attempts, meta, name, True
        )
        return self._push([task], True)[0]

    def push_many(
        self,
        items: Iterable[Any],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> list[TaskId]:
        """Store many tasks at once, all or none (as ``Backend.push_many``)."""
        backend = self.backend
        backend.require(Capability.PUSH)
        tasks = [
            backend._from_task(item)
            if isinstance(item, Task)
            else backend._new_task(
                item, queue, run_at, delay, priority, max_attempts, meta, name, False
            )
            for item in items
        ]
        if not tasks:
            return []
        return list(self._push(tasks, False))

    # --- task management --------------------------------------------------------------

    def fetch_by_id(self, task_id: TaskIdLike, as_type: Any = Any) -> Task[Any] | None:
        """The task with that id (args and result decoded), or ``None``."""
        return self._run(self.backend.fetch_by_id(task_id, as_type))

    def update(self, task: Task[Any]) -> None:
        """Overwrite the stored task with ``task``."""
        self._run(self.backend.update(task))

    def reschedule(
        self,
        task: Task[Any] | TaskIdLike,
        *,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
    ) -> None:
        """Run the task again later: at ``run_at``, after ``delay``, or now."""
        self._run(self.backend.reschedule(task, run_at=run_at, delay=delay))

    def vacuum(self) -> int:
        """Delete finished tasks; return how many."""
        return self._run(self.backend.vacuum())

    def resume_by_id(self, task_id: TaskIdLike) -> bool:
        """Make a failed, killed or stuck task run again."""
        return self._run(self.backend.resume_by_id(task_id))

    def resume_abandoned(self) -> int:
        """Put back tasks whose workers' leases expired; return how many."""
        return self._run(self.backend.resume_abandoned())

    # --- Expose -----------------------------------------------------------------------

    def list_tasks(
        self, queue: str | None = None, filter: Filter | None = None, **filter_fields: Any
    ) -> list[Task[Any]]:
        """A page of one queue's tasks, decoded."""
        return self._run(self.backend.list_tasks(queue, filter, **filter_fields))

    def list_all_tasks(self, filter: Filter | None = None, **filter_fields: Any) -> list[Task[Any]]:
        """A page of every queue's tasks, decoded."""
        return self._run(self.backend.list_all_tasks(filter, **filter_fields))

    def list_queues(self) -> list[QueueInfo]:
        """Every queue with its statistics."""
        return self._run(self.backend.list_queues())

    def list_workers(self, queue: str | None = None) -> list[RunningWorker]:
        """Registered workers of ``queue``, or of all queues."""
        return self._run(self.backend.list_workers(queue))

    def metrics(self, queue: str | None = None) -> list[Statistic]:
        """Statistics of ``queue``, or of the whole store."""
        return self._run(self.backend.metrics(queue))

    # --- WaitForCompletion ----------------------------------------------------------------

    def wait_for(
        self, task_ids: Iterable[TaskIdLike], *, timeout: float | None = None, as_type: Any = Any
    ) -> Iterator[TaskResult[Any]]:
        """Yield each task's result once, in the order they finish."""
        stream = self.backend.wait_for(list(task_ids), timeout=timeout, as_type=as_type)
        try:
            while True:
                try:
                    yield self._run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(stream, "aclose", None)  # an async generator's, to run its finally
            if close is not None and not self._closed:
                self._run(close())

    def wait_one(
        self, task_id: TaskIdLike, *, timeout: float | None = None, as_type: Any = Any
    ) -> TaskResult[Any]:
        """Wait for one task and return its result."""
        return self._run(self.backend.wait_one(task_id, timeout=timeout, as_type=as_type))

    def check_status(
        self, task_ids: Iterable[TaskIdLike], *, as_type: Any = Any
    ) -> list[TaskResult[Any]]:
        """Results of the given tasks that have finished, without waiting."""
        return self._run(self.backend.check_status(list(task_ids), as_type=as_type))

    def run(self, function: Callable[[Backend], Awaitable[T]]) -> T:
        """Run ``function(backend)`` (an ``async`` function of the async backend) on the loop."""
        return self._run(function(self.backend))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._backend is not None else "unopened"
        return f"<BlockingBackend {state} {self._backend!r}>"


def open(target: str | Opener, /, **config: Any) -> BlockingBackend:  # noqa: A001
    """A ``BlockingBackend`` for ``target`` (a URL or a factory returning a ``Backend``)."""
    return BlockingBackend(target, **config)
