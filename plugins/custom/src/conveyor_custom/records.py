"""Helpers for writing a custom backend's parts: storing tasks, claiming them, settling acks.

The contract's rules themselves are ``conveyor.rules`` (pure functions over task
records); these wrap the ones a backend over a plain table needs most, in terms
of a ``WorkerInfo`` and a clock: ``claim`` is what ``fetch`` does to a ready
task, ``settle`` what ``ack`` does to the stored one, ``extend`` a heartbeat,
``abandon`` what ``resume_abandoned`` does. ``dump_task`` and ``load_task`` turn a
task into one JSON text column and back.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from conveyor import Clock, Status, Task, TaskId, WorkerInfo, rules
from conveyor.rules import settle
from conveyor.rules.authoring import DEFAULT_LEASE_SECONDS, SYSTEM_CLOCK, at

__all__ = ["claim", "settle", "extend", "abandon", "is_ready", "dump_task", "load_task"]


def is_ready(task: Task[Any], now: float) -> bool:
    """Whether ``poll`` may hand ``task`` out at epoch second ``now``."""
    return rules.is_ready(task, at(now))


def claim(
    task: Task[bytes],
    worker: WorkerInfo,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    clock: Clock = SYSTEM_CLOCK,
) -> Task[bytes]:
    """``task`` claimed for ``worker``: ``RUNNING``, attempt counted, a fresh lease
    (``conveyor.rules.claim``). Store the result before returning it from ``fetch``."""
    now = at(clock.time())
    return rules.claim(task, worker.name, now=now, lease_seconds=lease_seconds)


def extend(
    task: Task[bytes], *, lease_seconds: float = DEFAULT_LEASE_SECONDS, clock: Clock = SYSTEM_CLOCK
) -> Task[bytes]:
    """``task`` after a heartbeat of its holder: the lease moved ``lease_seconds`` ahead,
    unless it has already expired (``conveyor.rules.extend``)."""
    now = at(clock.time())
    return rules.extend(task, task.lock_by or "", now=now, lease_seconds=lease_seconds)


def abandon(task: Task[bytes], *, clock: Clock = SYSTEM_CLOCK) -> Task[bytes] | None:
    """``task`` put back if its lease has expired (its worker presumed dead), else ``None``:
    ``PENDING`` with attempts left, else ``KILLED`` (``conveyor.rules.abandon``)."""
    return rules.abandon(task, at(clock.time()))


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


def _when(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dump_task(task: Task[bytes]) -> str:
    """``task`` as one line of JSON (args and result base64: a codec's bytes may be anything)."""
    return json.dumps(
        {
            "id": str(task.id),
            "args": _b64(task.args),
            "queue": task.queue,
            "status": task.status.value,
            "attempt": task.attempt,
            "max_attempts": task.max_attempts,
            "run_at": task.run_at.timestamp(),
            "priority": task.priority,
            "result": _b64(task.result),
            "last_error": task.last_error,
            "lock_by": task.lock_by,
            "lease_token": task.lease_token,
            "lease_until": _when(task.lease_until),
            "meta": dict(task.meta),
            "name": task.name,
        },
        separators=(",", ":"),
    )


def load_task(text: str | bytes) -> Task[bytes]:
    """The task ``dump_task`` wrote; ``ValueError`` saying what is wrong otherwise."""
    try:
        data = json.loads(text)
        lease_until = data["lease_until"]
        result = data["result"]
        return Task(
            TaskId.parse(data["id"]),
            base64.b64decode(data["args"], validate=True),
            str(data["queue"]),
            Status.parse(data["status"]),
            int(data["attempt"]),
            int(data["max_attempts"]),
            datetime.fromtimestamp(float(data["run_at"]), UTC),
            int(data["priority"]),
            None if result is None else base64.b64decode(result, validate=True),
            data["last_error"],
            data["lock_by"],
            data["lease_token"],
            None if lease_until is None else datetime.fromtimestamp(float(lease_until), UTC),
            dict(data["meta"]),
            data.get("name"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a task written by dump_task: {type(exc).__name__}: {exc}") from None
