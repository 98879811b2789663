"""The bugs seeded into ``indie.IndieBackend`` to measure the conformance suite.

Each name switches on one small realistic slip at one place in ``indie.py``
(``IndieConfig(bug=NAME)``). ``PLAIN`` are slips a careful author might still
make (a wrong comparison, a forgotten field); ``SUBTLE`` only show when the
backend is used as a worker uses it (a stream kept open, two pollers, a lease
lost and claimed again) or at an edge the hookspecs name. None is of a kind
``variants.py`` already holds.
"""

from __future__ import annotations

__all__ = ["PLAIN", "SUBTLE", "ALL"]

PLAIN: dict[str, str] = {
    "retry_off_by_one": "Retry kills only when attempt > max_attempts: one run too many",
    "release_counts_attempt": "Release keeps the attempt counted",
    "kill_drops_error": "Kill stores no last_error",
    "heartbeat_all_workers": "a heartbeat extends every worker's leases, not only its own",
    "metrics_ignore_queue": "metrics(queue) counts the whole store",
    "name_filter_ignored": "listings ignore filter.name",
    "update_moves_queue": "update stores the queue the caller's task carries",
    "push_drops_name": "push forgets Task.name",
    "check_status_reports_failed": "check_status reports FAILED tasks as finished",
    "queues_omit_worker_only": "list_queues leaves out a queue that has workers but no tasks",
    "fetch_misses_killed": "fetch_by_id returns None for a KILLED task",
    "resume_killed_keeps_attempt": "resume_by_id of a killed task keeps its attempts",
}

SUBTLE: dict[str, str] = {
    "poll_snapshot": "a poll stream serves what was ready when it opened, never later pushes",
    "poll_prefetch": "poll claims the next task ahead of demand",
    "poll_spins": "poll yields None again and again without ever awaiting",
    "heartbeat_revives_expired": "a heartbeat extends a lease that already expired",
    "expiry_strict": "a lease expires only after lease_until, not at it",
    "release_to_back": "a released task goes to the back of the line",
    "order_ignores_run_at": "within a priority, lowest id first whatever the run_at",
    "claim_race": "an await between reading the ready task and claiming it",
    "ack_vacuumed_not_found": "an ack of a vacuumed task raises TaskNotFound, not StaleLease",
    "ack_refused_after_expiry": "an ack after the lease deadline is refused before any resume",
    "update_takes_lease": "update stores the lease the caller's task carries",
    "reschedule_keeps_attempt": "rescheduling a held task keeps its attempt counted",
}

ALL: dict[str, str] = {**PLAIN, **SUBTLE}
