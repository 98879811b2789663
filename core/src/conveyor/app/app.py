"""``App``: an application's named tasks, the backend they go to, and the worker that runs them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from conveyor.app.named import NamedTask
from conveyor.app.runner import AppWorker
from conveyor.backend import MAX_NAME, Backend
from conveyor.middleware.retry import RetryPolicy
from conveyor.rules.config import check_queue_name
from conveyor.worker.routes import Routes

__all__ = ["App"]

P = ParamSpec("P")
R = TypeVar("R")


def _default_name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None) or "__main__"
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    if not qualname:
        raise TypeError(f"cannot name {function!r}: give @app.task(name=...)")
    return f"{module}.{qualname}"


class App:
    """A set of named tasks and the backend they are pushed to.

    ``backend`` is a URL (opened on first use), an opened ``Backend``, or
    ``None`` (``CONVEYOR_BACKEND`` / ``[tool.conveyor]`` at first use; the
    ``conveyor worker`` command's ``-b`` overrides all of them). ``queue`` is
    the default queue of tasks that name none (else the backend's own).

        app = conveyor.App("json:///var/lib/app/tasks.json")

        @app.task(queue="mail", max_attempts=3)
        async def send_email(email: Email) -> None: ...

        await send_email.push(Email(to="ada@example.com"))
    """

    def __init__(self, backend: str | Backend | None = None, *, queue: str | None = None) -> None:
        if queue is not None:
            check_queue_name(queue)
        self.target: str | None = backend if isinstance(backend, str) else None
        self._backend: Backend | None = backend if isinstance(backend, Backend) else None
        self.queue = queue
        self._tasks: dict[str, NamedTask[Any, Any]] = {}
        self._blocking: Any = None

    # --- registering ------------------------------------------------------------------

    @overload
    def task(self, function: Callable[P, R], /) -> NamedTask[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Callable[[Callable[P, R]], NamedTask[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy misreads the ParamSpec of the factory overload
        self,
        function: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> NamedTask[P, R] | Callable[[Callable[P, R]], NamedTask[P, R]]:
        """Register a function as a named task (``@app.task`` or ``@app.task(...)``).

        ``name`` defaults to ``module.qualname``; ``queue``, ``priority`` and
        ``max_attempts`` are the defaults of its pushes; ``retry`` replaces the
        worker's retry policy for its failures; ``timeout`` (seconds) cancels
        an attempt that runs longer. The function takes its payload (and,
        optionally, a ``TaskContext``); its first parameter's annotation is
        the payload's type.
        """
        if queue is not None:
            check_queue_name(queue)
        if type(priority) is not int:
            raise ValueError(f"priority must be a whole number, not {priority!r}")
        if max_attempts is not None and (type(max_attempts) is not int or max_attempts < 1):
            raise ValueError(
                f"max_attempts must be a whole number of at least 1, not {max_attempts!r}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a conveyor RetryPolicy, not {type(retry).__name__}")

        def register(target: Callable[P, R]) -> NamedTask[P, R]:
            task_name = _default_name(target) if name is None else name
            if type(task_name) is not str or not task_name or len(task_name) > MAX_NAME:
                raise ValueError(
                    f"a task name must be a non-empty string of at most {MAX_NAME}"
                    f" characters, not {task_name!r:.80}"
                )
            if task_name in self._tasks:
                other = self._tasks[task_name].function
                raise ValueError(
                    f"two tasks named {task_name!r} ({_where(other)} and {_where(target)});"
                    " give one of them @app.task(name=...)"
                )
            named = NamedTask(
                self,
                target,
                name=task_name,
                queue=queue if queue is not None else self.queue,
                priority=priority,
                max_attempts=max_attempts,
                retry=retry,
                timeout=timeout,
            )
            self._tasks[task_name] = named
            return named

        return register if function is None else register(function)

    @property
    def tasks(self) -> Mapping[str, NamedTask[Any, Any]]:
        """The registered tasks by name."""
        return dict(self._tasks)

    @property
    def queues(self) -> list[str]:
        """The queues the tasks name as defaults (``None`` stands for the backend's), sorted."""
        return sorted({t.queue or self.backend.queue for t in self._tasks.values()})

    def routes(self, names: Iterable[str] | None = None) -> Routes:
        """The worker's routing table: every task, or those ``names``."""
        if not self._tasks:
            raise ValueError("this app has no tasks: register some with @app.task first")
        if names is None:
            return Routes([t.route for t in self._tasks.values()])
        chosen = []
        for wanted in names:
            if wanted not in self._tasks:
                raise ValueError(f"this app has no task named {wanted!r}")
            chosen.append(self._tasks[wanted].route)
        return Routes(chosen)

    # --- the backend --------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The app's backend, opened on first use."""
        if self._backend is None:
            import conveyor

            self._backend = conveyor.open(self.target)
        return self._backend

    def use(self, backend: Backend) -> None:
        """Push to (and run workers on) ``backend`` from now on."""
        if not isinstance(backend, Backend):
            raise TypeError(f"use() takes an opened conveyor Backend, not {type(backend).__name__}")
        self._backend = backend

    @property
    def blocking(self) -> Any:
        """The app's backend as ``conveyor.blocking`` sees it: plain methods, no event loop.

        Imported on first use, so an app that never pushes from sync code never loads it.
        """
        if self._blocking is None:
            try:
                blocking = importlib.import_module("conveyor.blocking")
            except ImportError as exc:
                raise RuntimeError(
                    f"push_sync needs conveyor.blocking, which this installation lacks: {exc}"
                ) from None
            target: Any = self.target
            if target is None and self._backend is not None:
                raise RuntimeError(
                    "push_sync needs the app's backend as a URL, e.g."
                    " App('json:///var/lib/app/tasks.json'): this app was handed an opened"
                    " Backend, which belongs to the event loop that opened it"
                )
            if target is None:
                from conveyor.config import configured_target

                target = configured_target()
                if target is None:
                    self.backend  # noqa: B018 - raises the error that says how to configure one
            self._blocking = blocking.BlockingBackend(target)
        return self._blocking

    async def aclose(self) -> None:
        """Close the backend this app opened."""
        if self._blocking is not None:
            self._blocking.close()
            self._blocking = None
        if self._backend is not None and self.target is not None:
            backend, self._backend = self._backend, None
            await backend.aclose()

    # --- running --------------------------------------------------------------------------

    def worker(
        self,
        backend: Backend | None = None,
        *,
        queues: Iterable[str] | None = None,
        **options: Any,
    ) -> AppWorker:
        """A worker for every task of the app, on ``queues`` (default: every queue the
        tasks name). ``options`` are ``Worker``'s (``concurrency`` is per queue)."""
        backend = backend if backend is not None else self.backend
        chosen = list(queues) if queues is not None else None
        if chosen is not None:
            if not chosen:
                raise ValueError("queues is empty: name at least one queue, or leave it out")
            for queue in chosen:
                check_queue_name(queue)
        else:
            chosen = sorted({t.queue or backend.queue for t in self._tasks.values()})
        return AppWorker(backend, self.routes(), chosen, options)

    def __repr__(self) -> str:
        return f"<App tasks={len(self._tasks)}>"


def _where(function: Callable[..., Any]) -> str:
    code = getattr(function, "__code__", None)
    if code is None:
        return repr(function)
    return f"{code.co_filename}:{code.co_firstlineno}"
