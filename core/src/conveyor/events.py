"""What a worker reports while it runs: its state and the events listeners receive."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

import attrs

from conveyor.outcome import Outcome
from conveyor.task import Task

__all__ = [
    "WorkerState",
    "Start",
    "Idle",
    "Heartbeat",
    "Success",
    "Error",
    "Stop",
    "Event",
    "Listener",
    "deliver",
]

logger = logging.getLogger("conveyor.worker")


class WorkerState(enum.StrEnum):
    """Pending → Running ⇄ Paused → Stopped."""

    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    STOPPED = "Stopped"


@attrs.frozen(slots=True)
class Start:
    """The worker began polling; ``worker`` is its name."""

    worker: str


@attrs.frozen(slots=True)
class Idle:
    """A poll found nothing ready."""

    worker: str


@attrs.frozen(slots=True)
class Heartbeat:
    """The backend accepted a heartbeat."""

    worker: str


@attrs.frozen(slots=True)
class Success:
    """A handler returned; ``task`` is the claimed task (compact), ``result`` its value."""

    worker: str
    task: Task[bytes]
    result: Any


@attrs.frozen(slots=True)
class Error:
    """Something failed.

    With a ``task``: that attempt failed and ``outcome`` is what the worker
    acked for it (``Retry``, ``Kill``). Without one: the backend failed (poll,
    heartbeat, ack) and the worker carries on.
    """

    worker: str
    error: BaseException
    task: Task[bytes] | None = None
    outcome: Outcome | None = None


@attrs.frozen(slots=True)
class Stop:
    """The worker stopped; nothing of it runs any more."""

    worker: str


Event = Start | Idle | Heartbeat | Success | Error | Stop
Listener = Callable[[Event], object]
"""Called with each event, on the worker's event loop; must not block."""


def deliver(listeners: list[Listener], event: Event) -> None:
    """Hand ``event`` to every listener; a listener that raises is logged, not fatal."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception("worker event listener %r failed on %r", listener, event)
