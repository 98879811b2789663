"""Task hashes as stored (see ``tasks.lua``) to and from ``conveyor.Task``."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor import ConveyorError, PayloadError, Status, Task, TaskId, TaskResult

__all__ = [
    "micros",
    "from_micros",
    "priority_key",
    "priority_of",
    "meta_bytes",
    "to_task",
    "claimed",
    "pairs",
    "to_result",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_STATUS = {s.value.encode(): s for s in Status}
_INT64 = 1 << 63
_NO_META: Mapping[str, Any] = {}


def micros(when: datetime) -> int:
    """Exact integer microseconds since the epoch (stored times never go through a float)."""
    return (when - _EPOCH) // _MICRO


def from_micros(value: bytes | int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


def priority_of(key: bytes) -> int:
    """The priority a ``priority_key`` was made from."""
    return _INT64 - 1 - int(key, 16)


@functools.lru_cache(maxsize=1024)
def priority_key(priority: int) -> str:
    """16 hex digits that sort higher priorities first."""
    if not -_INT64 <= priority < _INT64:
        raise ConveyorError(
            f"priority {priority} is outside the 64-bit range the Redis backend stores;"
            f" use a value from {-_INT64} to {_INT64 - 1}"
        )
    return f"{_INT64 - 1 - priority:016x}"


def meta_bytes(meta: Mapping[str, Any]) -> bytes:
    """Task meta as compact JSON (``b""`` for none)."""
    if not meta:
        return b""
    try:
        return json.dumps(dict(meta), separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"task meta must be JSON-able for the Redis backend: {exc}") from None


def pairs(flat: Sequence[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    """An ``HGETALL`` reply as a dict: flat from a script or RESP2, a map from RESP3."""
    if isinstance(flat, dict):
        return flat
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def to_task(task_id: str, h: Mapping[bytes, bytes]) -> Task[bytes]:
    """A task from its hash fields."""
    lu = h.get(b"lu")
    raw_meta = h.get(b"meta")
    meta: Mapping[str, Any] = json.loads(raw_meta) if raw_meta else {}
    return Task(
        TaskId.parse(task_id),
        h.get(b"d", b""),
        h[b"q"].decode(),
        _STATUS[h[b"s"]],
        int(h.get(b"a", 0)),
        int(h[b"x"]),
        from_micros(h[b"r"]),
        priority_of(h[b"pk"]),
        h.get(b"res"),
        _text(h.get(b"err")),
        _text(h.get(b"by")) or None,
        _text(h.get(b"tok")) or None,
        from_micros(lu) if lu else None,
        meta,
        _text(h.get(b"n")),
    )


def claimed(record: bytes, queue: str, worker: str, token: str, lease: datetime) -> Task[bytes]:
    """A task just claimed, from one record of the claim script (see ``tasks.lua``)."""
    head, body = record.split(b"\n", 1)
    tid, attempt, max_attempts, run_at, pk, n_args, n_meta, n_error, n_name = head.split(b" ")
    end_args = int(n_args)
    end_meta = end_args + int(n_meta)
    end_error = end_meta if n_error == b"-1" else end_meta + int(n_error)
    meta = body[end_args:end_meta]
    return Task(
        TaskId.parse(tid.decode()),
        body[:end_args],
        queue,
        Status.RUNNING,
        int(attempt),
        int(max_attempts),
        from_micros(run_at),
        priority_of(pk),
        None,
        None if n_error == b"-1" else body[end_meta:end_error].decode("utf-8", "replace"),
        worker,
        token,
        lease,
        json.loads(meta) if meta else _NO_META,
        None if n_name == b"-1" else body[end_error:].decode("utf-8", "replace"),
    )


def to_result(
    task_id: TaskId, status: bytes, result: bytes | None, error: bytes | None
) -> TaskResult[bytes] | None:
    """The result of a finished task, ``None`` while it is not finished."""
    state = _STATUS[status]
    if not state.is_final:
        return None
    return TaskResult(task_id, state, result, _text(error) if state is Status.KILLED else None)
