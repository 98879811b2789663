"""One set of names over Django 6's ``django.tasks`` and the ``django-tasks`` backport."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "BaseTaskBackend",
    "DjangoTask",
    "InvalidTask",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task_backends",
    "SOURCE",
]

if TYPE_CHECKING:  # the backport is typed; Django itself is not
    from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task as DjangoTask
    from django_tasks.base import TaskError
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.utils import normalize_json

    SOURCE: str
else:
    try:
        from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task as DjangoTask
        from django.tasks.base import TaskError
        from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
        from django.utils.json import normalize_json

        SOURCE = "django.tasks"
    except ImportError:
        try:
            from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
            from django_tasks.backends.base import BaseTaskBackend
            from django_tasks.base import Task as DjangoTask
            from django_tasks.base import TaskError
            from django_tasks.exceptions import InvalidTaskError as InvalidTask
            from django_tasks.exceptions import TaskResultDoesNotExist
            from django_tasks.utils import normalize_json
        except ImportError as exc:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "conveyor_django needs django.tasks (Django 6 or later) or the backport:"
                " pip install django-tasks"
            ) from exc
        SOURCE = "django_tasks"


def exception_path(error: BaseException) -> str:
    """``module.QualName`` of ``error``'s class, as ``TaskError.exception_class_path``."""
    kind: Any = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"
