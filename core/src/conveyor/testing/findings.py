"""Known findings: suite tests that this repository's own backends fail today, and why.

Each entry names a real bug the strengthened suite exposed in a backend of this
repository (written up in the project's notes with its owner). While it stands,
the test is marked as an expected failure *for that backend only* (non-strict:
a fixed backend shows XPASS, and the entry should then be deleted). A third-party
backend is never matched: the keys are this repository's backend names.
"""

from __future__ import annotations

import attrs

__all__ = ["FINDINGS", "Finding", "finding_for"]


@attrs.frozen
class Finding:
    """One bug: its label, the backends it is in (a ``Backend.name``, or the dotted path of
    the plugin's class or a base class of it), the tests it fails."""

    label: str
    text: str
    backends: tuple[str, ...]
    tests: tuple[str, ...]
    run: bool = True
    """False: skip rather than run and expect failure (a failing model shrinks for minutes)."""


_MEMORY = "conveyor_memory.backend.MemoryBackend"  # the broken variants derive from it
_MEMORY_LIKE = ("memory", _MEMORY, "json", "pipe", "redis")

FINDINGS: tuple[Finding, ...] = (
    Finding(
        "F1",
        "heartbeat extends a lease whose deadline already passed (hookspecs.heartbeat)",
        (*_MEMORY_LIKE, "custom", "sqlite"),
        ("TestResumeAbandoned::test_a_heartbeat_does_not_revive_an_expired_lease",),
    ),
    Finding(
        "F2",
        "reschedule of a held task keeps its attempt counted; a finished task is not refused",
        _MEMORY_LIKE,
        (
            "TestReschedule::test_a_held_task_gets_its_attempt_back",
            "TestReschedule::test_a_finished_task_is_refused",
        ),
    ),
    Finding(
        "F3",
        "resume_by_id of a held task keeps its attempt counted (a claim can pass max_attempts)",
        (*_MEMORY_LIKE, "sqlite"),
        (
            "TestResumeById::test_resume_killed_failed_running",
            "TestResumeById::test_resume_of_a_last_attempt",
        ),
    ),
    Finding(
        "F4",
        "update stores attempt, queue and lease as the caller gives them, lets a status enter"
        " or leave RUNNING, and takes max_attempts below the attempt",
        _MEMORY_LIKE,
        (
            "TestUpdate::test_update_keeps_queue_attempt_and_lease",
            "TestUpdate::test_update_never_enters_or_leaves_running",
            "TestUpdate::test_update_refuses_max_attempts_below_attempt",
        ),
    ),
    Finding(
        "F5",
        "order within a priority is push (or re-queue) sequence, not run_at then id: a release"
        " or an abandoned task goes to the back, an earlier retry waits behind later tasks",
        ("memory", _MEMORY, "json", "pipe"),
        (
            "TestOrder::test_earliest_run_at_first_within_a_priority",
            "TestOrder::test_a_released_task_keeps_its_place",
            "TestOrder::test_an_abandoned_task_keeps_its_place",
            "TestOrder::test_a_retry_takes_its_place_at_its_run_at",
        ),
    ),
    Finding(
        "F5b",
        "SQL order is priority then id, not run_at then id: an earlier-due task (a retry, a"
        " delayed push) waits behind later ones, a task resumed by id jumps the line",
        ("custom", "sqlite"),
        (
            "TestOrder::test_earliest_run_at_first_within_a_priority",
            "TestOrder::test_a_retry_takes_its_place_at_its_run_at",
        ),
    ),
    Finding(
        "F5c",
        "a task resumed by id keeps its old place instead of joining the back of the line",
        ("sqlite",),
        ("TestOrder::test_a_task_resumed_by_id_joins_the_back",),
    ),
    Finding(
        "F6",
        "Task.name is not stored (push, push_weak, update) nor matched by filter.name",
        ("json", "pipe", "redis", "custom", "sqlite"),
        (
            "TestPush::test_the_stored_task_keeps_every_field",
            "TestPushWeak::test_push_weak_stores_a_task",
            "TestUpdate::test_update_overwrites",
            "TestListTasks::test_filter_by_name_and_status",
            "TestListAllTasks::test_filter_by_name_and_status",
            "TestWorkerUse::test_a_reopened_store_keeps_order_and_fields",
        ),
    ),
    Finding(
        "F7",
        "resume_abandoned puts a task back to PENDING without a last_error saying its worker"
        " was lost",
        ("sqlite",),
        ("TestResumeAbandoned::test_an_expired_lease_is_resumed",),
    ),
    Finding(
        "F8",
        "the stateful model reaches F1/F2/F3/F5 (attempts after reschedule or resume, order)",
        (*_MEMORY_LIKE, "custom", "sqlite"),
        ("TestModel::test_model", "TestModel::test_model_deep"),
        run=False,
    ),
)


def finding_for(backend: str, plugin: object, test: str) -> Finding | None:
    """The finding that test ``Class::name`` is known to fail for ``backend`` (its name)
    over ``plugin`` (its plugin object)."""
    names = {backend, *(f"{c.__module__}.{c.__qualname__}" for c in type(plugin).__mro__)}
    for finding in FINDINGS:
        if test in finding.tests and names.intersection(finding.backends):
            return finding
    return None
