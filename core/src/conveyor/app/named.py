"""A function registered as a named task: its defaults, and the pushes that carry its name."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from conveyor.backend import Backend
from conveyor.errors import PayloadError
from conveyor.middleware.retry import RetryPolicy
from conveyor.middleware.timeout import Timeout
from conveyor.task_id import TaskId
from conveyor.worker.routes import Route

__all__ = ["NamedTask"]

P = ParamSpec("P")
R = TypeVar("R")


class Owner(Protocol):
    """What a task needs of its ``App`` (a protocol, so this module never imports it)."""

    @property
    def backend(self) -> Backend:
        """The backend pushes go to."""
        ...

    @property
    def blocking(self) -> Any:
        """The ``conveyor.blocking`` backend ``push_sync`` goes through."""
        ...


class NamedTask(Generic[P, R]):
    """What ``@app.task`` returns: the function, still callable as before, plus ``push``.

    ``await send_email.push(Email(...))`` stores a task named ``send_email.name``
    on its queue with its defaults; the payload is encoded and checked against
    the function's first parameter's annotation first, so a payload the worker
    could not decode raises ``PayloadError`` here, at the caller.
    ``send_email.push_sync(...)`` is the same from code with no event loop.
    """

    def __init__(
        self,
        app: Owner,
        function: Callable[P, R],
        *,
        name: str,
        queue: str | None,
        priority: int,
        max_attempts: int | None,
        retry: RetryPolicy | None,
        timeout: float | None,
    ) -> None:
        functools.update_wrapper(self, function)
        self.app = app
        self.function = function
        self.name = name
        self.queue = queue
        self.priority = priority
        self.max_attempts = max_attempts
        self.retry = retry
        self.timeout = timeout
        middleware = (Timeout(timeout),) if timeout is not None else ()
        # The signature and annotation are read once, here: a worker's per-task routing
        # is then a dict lookup, and a push checks against the type found now.
        self.route = Route.of(name, function, middleware=middleware, policy=retry)
        self.args_type: Any = self.route.spec.args_type
        self._checked: tuple[Backend, Backend] | None = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function itself, here and now (no queue involved)."""
        return self.function(*args, **kwargs)

    def _options(
        self,
        queue: str | None,
        priority: int | None,
        max_attempts: int | None,
    ) -> dict[str, Any]:
        return {
            "queue": queue if queue is not None else self.queue,
            "priority": self.priority if priority is None else priority,
            "max_attempts": self.max_attempts if max_attempts is None else max_attempts,
            "name": self.name,
        }

    def _backend(self) -> Backend:
        """The app's backend, checking payloads against this task's type (made once)."""
        backend = self.app.backend
        checked = self._checked
        if checked is None or checked[0] is not backend:
            typed = backend.with_args_type(None if self.args_type is Any else self.args_type)
            checked = self._checked = (backend, typed)
        return checked[1]

    async def push(
        self,
        args: Any = None,
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> TaskId:
        """Enqueue ``args`` for this task; return the task's id.

        Options left out take the task's defaults (``@app.task(queue=...)``),
        then the backend's. ``PayloadError`` (naming the task) if ``args`` does
        not fit the function's annotation.
        """
        backend = self._backend()
        try:
            return await backend.push(
                args,
                run_at=run_at,
                delay=delay,
                meta=meta,
                **self._options(queue, priority, max_attempts),
            )
        except PayloadError as exc:
            raise PayloadError(f"task {self.name}: {exc}") from None

    async def push_many(
        self,
        items: Iterable[Any],
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> list[TaskId]:
        """Enqueue many payloads for this task, all or none (each checked first)."""
        backend = self._backend()
        try:
            return await backend.push_many(
                items,
                run_at=run_at,
                delay=delay,
                meta=meta,
                **self._options(queue, priority, max_attempts),
            )
        except PayloadError as exc:
            raise PayloadError(f"task {self.name}: {exc}") from None

    def push_sync(
        self,
        args: Any = None,
        *,
        queue: str | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> TaskId:
        """``push`` for code with no running event loop (a Django view, a script, a thread).

        Runs through the app's ``conveyor.blocking`` backend, made on first use.
        """
        blocking = self.app.blocking
        try:
            if self.args_type is not Any:
                # Checked here, in the caller's thread, against this task's own type.
                codec = blocking.backend.codec
                codec.decode(codec.encode(args), self.args_type)
            task_id: TaskId = blocking.push(
                args,
                run_at=run_at,
                delay=delay,
                meta=meta,
                **self._options(queue, priority, max_attempts),
            )
        except PayloadError as exc:
            raise PayloadError(f"task {self.name}: {exc}") from None
        return task_id

    def __repr__(self) -> str:
        queue = f" queue={self.queue!r}" if self.queue else ""
        return f"<NamedTask {self.name}{queue}>"
