"""What a worker reports back for a task it ran: the argument of the ``ack`` hook."""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["Done", "Retry", "Kill", "Release", "Outcome"]


@attrs.frozen(slots=True)
class Done:
    """The handler returned; ``result`` is its value in compact (encoded) form."""

    result: bytes | None = None


@attrs.frozen(slots=True)
class Retry:
    """The attempt failed with ``error``; run the task again at ``run_at`` (status ``FAILED``)."""

    run_at: datetime
    error: str


@attrs.frozen(slots=True)
class Kill:
    """Give the task up (status ``KILLED``); ``error`` says why."""

    error: str


@attrs.frozen(slots=True)
class Release:
    """Hand the task back unrun (shutdown): ``PENDING`` again, this attempt not counted."""

    reason: str = "released"


Outcome = Done | Retry | Kill | Release
