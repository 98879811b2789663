"""Rows to tasks and back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor import Status, Task, TaskId, TaskResult

__all__ = ["COLUMNS", "STATUS", "decode_meta", "meta_bytes", "to_result", "to_task"]

COLUMNS = (
    "id, queue, status, attempt, max_attempts, run_at, priority, args, result,"
    " last_error, lock_by, lease_token, lease_until, meta, name"
)
"""The columns ``to_task`` reads, in its order."""

STATUS = {s.value: s for s in Status}


def meta_bytes(meta: Mapping[str, Any]) -> bytes | None:
    """``meta`` as stored: compact JSON, ``None`` for none."""
    if not meta:
        return None
    return json.dumps(dict(meta), separators=(",", ":"), ensure_ascii=False).encode()


def decode_meta(raw: bytes | None) -> Mapping[str, Any]:
    """Stored meta back as a mapping."""
    return json.loads(raw) if raw else {}


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def to_task(row: Sequence[Any]) -> Task[bytes]:
    """A row of ``COLUMNS`` as a task."""
    return Task(
        TaskId(row[0]), bytes(row[7]), row[1], STATUS[row[2]], row[3], row[4], row[5], row[6],
        _bytes(row[8]), row[9], row[10], row[11], row[12], decode_meta(row[13]), row[14],
    )  # fmt: skip


def to_result(task_id: TaskId, status: str, result: Any, error: str | None) -> TaskResult[bytes]:
    """The result of a finished task."""
    state = STATUS[status]
    return TaskResult(task_id, state, _bytes(result), error if state is Status.KILLED else None)
