"""Capabilities: one per optional hook, derived from what a plugin implements."""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = ["Capability", "BACKEND_HOOKS", "DERIVED"]


class Capability(enum.StrEnum):
    """An optional part of the backend contract; the value is the hook's name."""

    ACK = "ack"
    PUSH = "push"
    PUSH_WEAK = "push_weak"
    FETCH_BY_ID = "fetch_by_id"
    UPDATE = "update"
    RESCHEDULE = "reschedule"
    VACUUM = "vacuum"
    RESUME_BY_ID = "resume_by_id"
    RESUME_ABANDONED = "resume_abandoned"
    REGISTER_WORKER = "register_worker"
    LIST_TASKS = "list_tasks"
    LIST_ALL_TASKS = "list_all_tasks"
    LIST_QUEUES = "list_queues"
    LIST_WORKERS = "list_workers"
    METRICS = "metrics"
    WAIT_FOR = "wait_for"
    CHECK_STATUS = "check_status"
    GET_QUEUE = "get_queue"
    MAKE_SHARED = "make_shared"
    MIGRATE = "migrate"
    # Derived: no hook of its own (see DERIVED).
    EXPOSE = "expose"

    @property
    def derived(self) -> bool:
        """True for capabilities that are a combination of others."""
        return self in DERIVED

    @classmethod
    def parse(cls, value: str | Capability) -> Capability:
        """Accept a member or its name (``"fetch_by_id"``, ``"FETCH_BY_ID"``)."""
        if isinstance(value, Capability):
            return value
        text = str(value).strip().lower().replace("-", "_")
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown capability {value!r}; known: {names}") from None


DERIVED: Mapping[Capability, frozenset[Capability]] = {
    # apalis' Expose: enough to drive a dashboard.
    Capability.EXPOSE: frozenset(
        {
            Capability.PUSH,
            Capability.LIST_TASKS,
            Capability.LIST_ALL_TASKS,
            Capability.LIST_QUEUES,
            Capability.LIST_WORKERS,
            Capability.METRICS,
        }
    ),
}

BACKEND_HOOKS = frozenset({"poll", "heartbeat", "middleware", "close"})
"""Hooks of the required Backend trait and lifecycle: not capabilities."""
