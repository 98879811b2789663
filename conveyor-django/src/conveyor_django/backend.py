"""``ConveyorBackend``: a ``django.tasks`` backend that stores tasks in any conveyor backend.

    TASKS = {
        "default": {
            "BACKEND": "conveyor_django.ConveyorBackend",
            "QUEUES": ["default", "mail"],
            "OPTIONS": {"URL": "redis://127.0.0.1:6379/0", "MAX_ATTEMPTS": 1},
        }
    }

``OPTIONS``: ``URL`` (required: any conveyor URL), ``CONFIG`` (keyword
configuration for ``conveyor.open``), ``MAX_ATTEMPTS`` (default 1: Django's
meaning of a task that raised is FAILED; more retries it with backoff first).
Enqueuing uses ``conveyor.blocking`` (so it works from any thread, a forked
gunicorn worker included); ``manage.py conveyor_worker`` runs the tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured

import conveyor
from conveyor import ConveyorError, TaskNotFound
from conveyor.blocking import BlockingBackend
from conveyor_django.compat import (
    BaseTaskBackend,
    DjangoTask,
    InvalidTask,
    TaskResult,
    TaskResultDoesNotExist,
    normalize_json,
)
from conveyor_django.records import META_KEY, to_result

__all__ = ["ConveyorBackend"]


class ConveyorBackend(BaseTaskBackend):
    """Django tasks in a conveyor store: defer, priority, queues, results, async tasks."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options: Mapping[str, Any] = self.options
        unknown = set(options) - {"URL", "CONFIG", "MAX_ATTEMPTS"}
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown keys {sorted(unknown)}:"
                " conveyor_django takes URL, CONFIG and MAX_ATTEMPTS"
            )
        url = options.get("URL")
        if not isinstance(url, str) or not url:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['URL'] must name the conveyor store, e.g."
                " 'redis://127.0.0.1:6379/0' or 'json:///var/lib/app/tasks.json'"
            )
        config = options.get("CONFIG", {})
        if not isinstance(config, Mapping):
            raise ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS']['CONFIG'] must be a dict")
        attempts = options.get("MAX_ATTEMPTS", 1)
        if type(attempts) is not int or attempts < 1:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['MAX_ATTEMPTS'] must be a whole number of at"
                f" least 1, not {attempts!r}"
            )
        self.url = url
        self.config = dict(config)
        self.max_attempts = attempts
        self._blocking: BlockingBackend | None = None

    def open(self) -> conveyor.Backend:
        """A new async conveyor backend on the configured store (for workers)."""
        return conveyor.open(self.url, **self.config)

    @property
    def blocking(self) -> BlockingBackend:
        """The blocking conveyor backend enqueuing and reading results (opened on first use)."""
        if self._blocking is None:
            self._blocking = BlockingBackend(self.url, **self.config)
        return self._blocking

    def enqueue(self, task: DjangoTask, args: Any, kwargs: Any) -> TaskResult:  # type: ignore[type-arg]
        """Store ``task(*args, **kwargs)`` and return its READY result."""
        self.validate_task(task)
        payload = {"args": normalize_json(list(args)), "kwargs": normalize_json(dict(kwargs))}
        run_at: datetime | None = task.run_after
        try:
            task_id = self.blocking.push(
                payload,
                queue=task.queue_name,
                run_at=run_at,
                priority=task.priority,
                max_attempts=self.max_attempts,
                name=task.module_path,
                meta={META_KEY: task.module_path},
            )
        except (ValueError, ConveyorError) as exc:
            raise InvalidTask(f"conveyor refused the task {task.module_path!r}: {exc}") from exc
        return self.get_result(str(task_id))

    def get_result(self, result_id: str) -> TaskResult:  # type: ignore[type-arg]
        """The task's result as stored now; ``TaskResultDoesNotExist`` if there is none."""
        try:
            record = self.blocking.fetch_by_id(result_id)
        except (ValueError, TaskNotFound) as exc:  # not even an id
            raise TaskResultDoesNotExist(result_id) from exc
        if record is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            return to_result(record, self.alias)
        except LookupError as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from exc

    def close(self) -> None:
        """Close the blocking backend (reopened on next use)."""
        if self._blocking is not None:
            self._blocking.close()
            self._blocking = None
