"""Helpers for writing a custom backend's parts: storing tasks, claiming them, settling acks.

They hold the contract's rules (see ``conveyor.hookspecs``) so a backend over a
plain table does not re-derive them: ``claim`` is what ``fetch`` does to a ready
task, ``settle`` what ``ack`` does to the stored one, ``dump_task`` and
``load_task`` turn a task into one JSON text column and back.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import attrs

from conveyor import Done, Kill, Outcome, Release, Retry, StaleLease, Status, Task, TaskId
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.context import WorkerInfo
from conveyor.lease import DEFAULT_LEASE_SECONDS, check_lease, new_token

__all__ = ["claim", "settle", "extend", "abandon", "is_ready", "dump_task", "load_task"]

_CLEAR: dict[str, Any] = {"lock_by": None, "lease_token": None, "lease_until": None}


def is_ready(task: Task[Any], now: float) -> bool:
    """Whether ``poll`` may hand ``task`` out at epoch second ``now``."""
    return task.status in (Status.PENDING, Status.FAILED) and task.run_at.timestamp() <= now


def claim(
    task: Task[bytes],
    worker: WorkerInfo,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    clock: Clock = SYSTEM_CLOCK,
) -> Task[bytes]:
    """``task`` claimed for ``worker``: ``RUNNING``, attempt counted, a fresh lease.

    Store the result before returning it from ``fetch``; ``settle`` checks it.
    """
    until = datetime.fromtimestamp(clock.time() + lease_seconds, UTC)
    return attrs.evolve(
        task,
        status=task.status.check(Status.RUNNING),
        attempt=task.attempt + 1,
        lock_by=worker.name,
        lease_token=new_token(),
        lease_until=until,
    )


def settle(stored: Task[bytes] | None, claimed: Task[bytes], outcome: Outcome) -> Task[bytes]:
    """The stored task after ``ack(claimed, outcome)``; ``StaleLease`` if ``claimed``'s lease
    is no longer the stored one (``stored`` is ``None`` when the task is gone)."""
    if stored is None:
        raise StaleLease(f"task {claimed.id} no longer exists; the ack was refused")
    check_lease(stored, claimed)
    if type(outcome) is Done:
        return attrs.evolve(stored, status=Status.DONE, result=outcome.result, **_CLEAR)
    if type(outcome) is Retry:
        if stored.attempt >= stored.max_attempts:
            return attrs.evolve(stored, status=Status.KILLED, last_error=outcome.error, **_CLEAR)
        return attrs.evolve(
            stored, status=Status.FAILED, run_at=outcome.run_at, last_error=outcome.error, **_CLEAR
        )
    if type(outcome) is Kill:
        return attrs.evolve(stored, status=Status.KILLED, last_error=outcome.error, **_CLEAR)
    if type(outcome) is Release:
        attempt = max(0, stored.attempt - 1)
        return attrs.evolve(stored, status=Status.PENDING, attempt=attempt, **_CLEAR)
    raise TypeError(f"unknown outcome {outcome!r}")


def extend(
    task: Task[bytes], *, lease_seconds: float = DEFAULT_LEASE_SECONDS, clock: Clock = SYSTEM_CLOCK
) -> Task[bytes]:
    """``task`` (held by a worker) with its lease moved ``lease_seconds`` ahead: a heartbeat."""
    return attrs.evolve(task, lease_until=datetime.fromtimestamp(clock.time() + lease_seconds, UTC))


def abandon(task: Task[bytes], *, clock: Clock = SYSTEM_CLOCK) -> Task[bytes] | None:
    """``task`` put back if its lease has expired (its worker presumed dead), else ``None``.

    The lost attempt stays counted: ``PENDING`` with attempts left, else ``KILLED``.
    """
    if task.status is not Status.RUNNING or task.lease_until is None:
        return None
    if task.lease_until.timestamp() > clock.time():
        return None
    error = f"worker {task.lock_by!r} stopped renewing its lease (attempt {task.attempt})"
    status = Status.KILLED if task.attempt >= task.max_attempts else Status.PENDING
    return attrs.evolve(task, status=status, last_error=error, **_CLEAR)


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
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a task written by dump_task: {type(exc).__name__}: {exc}") from None
