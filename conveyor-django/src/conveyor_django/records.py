"""How a Django task lives in a conveyor store, and how its record reads back as a ``TaskResult``.

A Django task is one conveyor task: its name is the function's module path (what
the worker imports to run it), its queue the ``queue_name``, its priority the
same number (higher runs first in both), its ``run_at`` the ``run_after``. The
payload is ``{"args": [...], "kwargs": {...}}``. The stored result is
``{"return_value": ..., "started_at": ..., "finished_at": ..., "worker_id": ...}``;
a failed attempt's ``last_error`` is ``TaskFailed: {"exception_class_path": ...,
"traceback": ..., ...}``, so the class and the traceback survive the store.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils.module_loading import import_string

from conveyor import Status, Task
from conveyor_django.compat import DjangoTask, TaskError, TaskResult, TaskResultStatus

__all__ = ["TaskFailed", "django_task", "task_path", "to_result", "STATUS", "META_KEY"]

META_KEY = "django_task"
"""The module path, in ``meta`` too: a store that does not keep ``Task.name`` keeps meta."""

STATUS: dict[Status, Any] = {
    Status.PENDING: TaskResultStatus.READY,
    Status.QUEUED: TaskResultStatus.READY,
    Status.RUNNING: TaskResultStatus.RUNNING,
    Status.FAILED: TaskResultStatus.READY,  # an attempt failed; it runs again
    Status.DONE: TaskResultStatus.SUCCESSFUL,
    Status.KILLED: TaskResultStatus.FAILED,
}
"""conveyor's status → Django's."""


class TaskFailed(Exception):
    """What the worker raises for a task that raised: the original's class and traceback,
    as JSON, so that ``get_result`` can give them back as a ``TaskError``."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(json.dumps(details, separators=(",", ":")))


def django_task(module_path: str | None) -> Any:
    """The Django ``Task`` at ``module_path``; ``LookupError`` naming what went wrong."""
    if not module_path:
        raise LookupError("the record has no task name: it was not pushed by conveyor_django")
    try:
        found = import_string(module_path)
    except ImportError as exc:
        raise LookupError(f"no Django task at {module_path!r}: {exc}") from exc
    if not isinstance(found, DjangoTask):
        raise LookupError(
            f"{module_path!r} is {type(found).__name__}, not a Django task (decorate it with @task)"
        )
    return found


def task_path(name: str | None, meta: Any) -> str | None:
    """The module path of a stored task: its name, else the copy in its meta."""
    if name:
        return name
    found = meta.get(META_KEY) if hasattr(meta, "get") else None
    return found if isinstance(found, str) else None


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _error(last_error: str | None) -> tuple[TaskError | None, dict[str, Any]]:
    if not last_error:
        return None, {}
    head, _, body = last_error.partition(": ")
    if head == "TaskFailed":
        try:
            details: dict[str, Any] = json.loads(body)
            error = TaskError(
                exception_class_path=details["exception_class_path"],
                traceback=details["traceback"],
            )
            return error, details
        except (ValueError, KeyError, TypeError):
            pass
    # Not raised by the task (a payload conveyor could not decode, a timeout, a kill
    # by an operator): the message is all there is.
    return TaskError(exception_class_path="conveyor.ConveyorError", traceback=last_error), {}


def to_result(record: Task[Any], alias: str) -> TaskResult:  # type: ignore[type-arg]
    """``record`` (a conveyor task pushed by ``ConveyorBackend``) as a Django ``TaskResult``."""
    task = django_task(task_path(record.name, record.meta))
    changes: dict[str, Any] = {"queue_name": record.queue, "backend": alias}
    if record.priority != task.priority:
        changes["priority"] = record.priority
    task = task.using(**changes)
    payload = record.args if isinstance(record.args, dict) else {}
    error, details = _error(record.last_error)
    value = record.result if isinstance(record.result, dict) else {}
    started = _when(value.get("started_at") or details.get("started_at"))
    finished = _when(value.get("finished_at") or details.get("finished_at"))
    worker = value.get("worker_id") or details.get("worker_id") or record.lock_by
    result: TaskResult = TaskResult(  # type: ignore[type-arg]
        task=task,
        id=str(record.id),
        status=STATUS[record.status],
        enqueued_at=record.created_at,
        started_at=started,
        finished_at=finished if record.status in (Status.DONE, Status.KILLED) else None,
        last_attempted_at=started,
        args=list(payload.get("args", [])),
        kwargs=dict(payload.get("kwargs", {})),
        backend=alias,
        errors=[error] if error is not None else [],
        worker_ids=[worker] * record.attempt if worker else [],
    )
    if record.status is Status.DONE:
        object.__setattr__(result, "_return_value", value.get("return_value"))
    return result
