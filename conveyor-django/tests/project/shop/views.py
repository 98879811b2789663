"""Views that enqueue from a request, and read a result back through Django's API."""

from __future__ import annotations

from datetime import timedelta

from conveyor_django.compat import TaskResultDoesNotExist, task_backends
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from shop import tasks


def order(request: HttpRequest, kind: str) -> HttpResponse:
    if kind == "add":
        result = tasks.add.enqueue(2, 3)
    elif kind == "mail":
        result = tasks.send_mail.enqueue("ada@example.com", subject="hello")
    elif kind == "explode":
        result = tasks.explode.enqueue("on purpose")
    elif kind == "async":
        result = tasks.double_later.enqueue(21)
    elif kind == "context":
        result = tasks.which_attempt.enqueue("ctx")
    elif kind == "deferred":
        later = timezone.now() + timedelta(hours=1)
        result = tasks.add.using(run_after=later).enqueue(1, 1)
    elif kind == "urgent":
        result = tasks.add.using(priority=90).enqueue(10, 10)
    else:
        return JsonResponse({"error": f"no such kind {kind!r}"}, status=404)
    return JsonResponse({"id": result.id, "status": str(result.status)}, status=202)


def result(request: HttpRequest, result_id: str) -> HttpResponse:
    try:
        found = task_backends["default"].get_result(result_id)
    except TaskResultDoesNotExist as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    body = {
        "id": found.id,
        "status": str(found.status),
        "task": found.task.module_path,
        "queue": found.task.queue_name,
        "priority": found.task.priority,
        "args": found.args,
        "kwargs": found.kwargs,
        "errors": [
            {"exception_class_path": e.exception_class_path, "traceback": e.traceback}
            for e in found.errors
        ],
        "return_value": found.return_value if found.status == "SUCCESSFUL" else None,
        "enqueued_at": found.enqueued_at.isoformat() if found.enqueued_at else None,
        "finished_at": found.finished_at.isoformat() if found.finished_at else None,
        "attempts": len(found.worker_ids),
    }
    return JsonResponse(body)
