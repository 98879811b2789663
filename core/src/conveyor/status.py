"""Task status and the one table of allowed transitions."""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = ["Status", "TRANSITIONS", "InvalidTransition"]


class Status(enum.StrEnum):
    """Where a task is in its life.

    ``PENDING``: waiting in its queue (ready, or scheduled for ``run_at``).
    ``QUEUED``: claimed into a worker's buffer, handler not started yet.
    ``RUNNING``: a worker holds its lease and runs the handler.
    ``FAILED``: the last attempt raised; it runs again at ``run_at``.
    ``DONE``: finished, result stored. ``KILLED``: given up, ``last_error`` says why.
    """

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"
    KILLED = "Killed"

    @property
    def is_final(self) -> bool:
        """True for ``DONE`` and ``KILLED``: nothing runs it again unless resumed."""
        return self in (Status.DONE, Status.KILLED)

    @property
    def is_ready_state(self) -> bool:
        """True where a task waits to be claimed once its ``run_at`` has come."""
        return self in (Status.PENDING, Status.FAILED)

    def can_become(self, new: Status) -> bool:
        """Whether the state machine allows ``self -> new``."""
        return new in TRANSITIONS[self]

    def check(self, new: Status) -> Status:
        """Return ``new`` if ``self -> new`` is allowed, else raise ``InvalidTransition``."""
        if new not in TRANSITIONS[self]:
            raise InvalidTransition(self, new)
        return new

    @classmethod
    def parse(cls, value: str | Status) -> Status:
        """Accept a member or its name in any case (``"done"``, ``"Done"``)."""
        if isinstance(value, Status):
            return value
        for member in cls:
            if member.value.lower() == str(value).strip().lower():
                return member
        names = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown status {value!r}; expected one of {names}")


S = Status
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    # claim (direct or via a buffer), or cancel before it ever ran
    S.PENDING: frozenset({S.QUEUED, S.RUNNING, S.KILLED}),
    # start, give back, cancel
    S.QUEUED: frozenset({S.RUNNING, S.PENDING, S.KILLED}),
    # outcome; or back to PENDING when the lease is released, expires, or it is rescheduled
    S.RUNNING: frozenset({S.DONE, S.FAILED, S.KILLED, S.PENDING}),
    # retry claimed; resumed or rescheduled by hand; given up
    S.FAILED: frozenset({S.QUEUED, S.RUNNING, S.PENDING, S.KILLED}),
    S.DONE: frozenset(),
    # resume_by_id brings a killed task back
    S.KILLED: frozenset({S.PENDING}),
}


class InvalidTransition(ValueError):
    """A status change the state machine does not allow."""

    def __init__(self, old: Status, new: Status) -> None:
        allowed = ", ".join(s.value for s in sorted(TRANSITIONS[old], key=list(Status).index))
        super().__init__(
            f"a task cannot go from {old.value} to {new.value}"
            f" (from {old.value} it may become: {allowed or 'nothing'})"
        )
        self.old = old
        self.new = new
