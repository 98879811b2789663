"""The worker side: each stored Django task run by its module path, a worker per queue."""

from __future__ import annotations

import asyncio
import signal
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from inspect import iscoroutinefunction
from typing import Any

from django.db import close_old_connections

import conveyor
from conveyor import Abort, Capability, RetryAfter, TaskContext, Worker
from conveyor_django.compat import TaskContext as DjangoContext
from conveyor_django.compat import (
    TaskResult,
    TaskResultStatus,
    exception_path,
    normalize_json,
)
from conveyor_django.records import TaskFailed, django_task, task_path

__all__ = ["DjangoTaskRunner", "run_workers"]


def _now() -> datetime:
    return datetime.now(UTC)


class _Raised(Exception):
    """The task's own exception, with the traceback of the task's frames only."""

    def __init__(self, error: Exception) -> None:
        frames = error.__traceback__.tb_next if error.__traceback__ is not None else None
        self.error = error
        self.text = "".join(traceback.format_exception(type(error), error, frames))


def _run_sync(function: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    # In a worker thread, as Django runs a request: stale database connections
    # are dropped before and after, never carried from one task to the next.
    close_old_connections()
    try:
        return function(*args, **kwargs)
    except (Abort, RetryAfter):
        raise
    except Exception as exc:
        raise _Raised(exc) from exc
    finally:
        close_old_connections()


async def _run_async(function: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return await function(*args, **kwargs)
    except (Abort, RetryAfter):
        raise
    except Exception as exc:
        raise _Raised(exc) from exc


class DjangoTaskRunner:
    """A conveyor handler that imports the task named by the record and calls it.

    A name that is no Django task fails that task at once (killed, with the
    reason), never the worker. A task that raises fails its attempt; its class
    and traceback are kept for ``TaskResult.errors``.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias

    async def __call__(self, payload: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        try:
            task = django_task(task_path(ctx.name, ctx.meta))
        except LookupError as exc:
            raise Abort(str(exc)) from exc
        args = list(payload.get("args", []))
        kwargs = dict(payload.get("kwargs", {}))
        started = _now()
        if task.takes_context:
            running = self._running(task, ctx, args, kwargs, started)
            args.insert(0, DjangoContext(task_result=running))
        try:
            if iscoroutinefunction(task.func):
                value = await _run_async(task.func, args, kwargs)
            else:
                value = await asyncio.to_thread(_run_sync, task.func, args, kwargs)
        except _Raised as raised:
            raise TaskFailed(
                {
                    "exception_class_path": exception_path(raised.error),
                    "traceback": raised.text,
                    "started_at": started.isoformat(),
                    "finished_at": _now().isoformat(),
                    "worker_id": ctx.worker,
                }
            ) from raised.error
        return {
            "return_value": normalize_json(value),
            "started_at": started.isoformat(),
            "finished_at": _now().isoformat(),
            "worker_id": ctx.worker,
        }

    def _running(
        self,
        task: Any,
        ctx: TaskContext,
        args: list[Any],
        kwargs: dict[str, Any],
        started: datetime,
    ) -> TaskResult:  # type: ignore[type-arg]
        return TaskResult(
            task=task.using(queue_name=ctx.queue, backend=self.alias),
            id=str(ctx.id),
            status=TaskResultStatus.RUNNING,  # type: ignore[arg-type]
            enqueued_at=None,
            started_at=started,
            finished_at=None,
            last_attempted_at=started,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[ctx.worker] * max(1, ctx.attempt),
        )


async def run_workers(
    backend: conveyor.Backend,
    queues: list[str],
    alias: str,
    *,
    concurrency: int,
    burst: bool,
    ready: Callable[[], None] | None = None,
) -> list[Worker]:
    """Run one worker per queue over ``backend`` until stopped (SIGINT/SIGTERM) or, with
    ``burst``, until every queue is drained; return the workers (for their counts).
    ``ready`` is called once the signal handlers are in place."""
    try:
        # A burst worker must not report "drained" for a store it never reached.
        if Capability.LIST_QUEUES in backend.capabilities:
            await backend.list_queues()
        else:
            await backend.check_status([])
    except conveyor.ConfigError:
        raise
    except Exception as exc:
        await backend.aclose()
        if isinstance(exc, conveyor.BackendUnavailable):
            raise
        raise conveyor.BackendUnavailable(
            f"cannot reach the {backend.name} store: {type(exc).__name__}: {exc}"
        ) from exc
    runner = DjangoTaskRunner(alias)
    shared = Capability.MAKE_SHARED in backend.capabilities
    backends = [backend.make_shared(q) if shared else backend for q in queues]
    if not shared and queues != [backend.queue]:
        raise conveyor.ConfigError(
            f"backend {backend.name!r} serves one queue ({backend.queue!r}) and cannot share its"
            f" store with others; run one worker per queue with --queue"
        )
    workers = [
        Worker(b, runner, concurrency=concurrency, handle_signals=False, name=None)
        for b in backends
    ]
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for worker in workers:
            worker.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_all)
    if ready is not None:
        ready()  # signals are handled from here on

    async def guarded(worker: Worker) -> None:
        try:
            await worker.run(burst=burst)
        except BaseException:
            stop_all()  # one worker's failure (its backend unreachable) stops them all
            raise

    try:
        results = await asyncio.gather(*(guarded(w) for w in workers), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await backend.aclose()
    return workers
