"""The backend contract: one hook specification per apalis ``backend`` trait method.

A backend is a plugin object (usually an instance of the class its entry point
names) whose methods are marked with ``conveyor.hookimpl``. Each opened backend
gets its own plugin manager holding that object plus any observers, so hooks
are never broadcast across backends. ``poll`` is the only hook every backend
must implement; ``heartbeat``, ``middleware`` and ``close`` default to doing
nothing. Every other hook is an optional capability (``conveyor.Capability``):
a backend has a capability exactly when it implements that hook.

Compact form: inside hooks, ``Task.args`` and ``Task.result`` are the codec's
bytes; the facade encodes before and decodes after.

All hooks are ``firstresult``: the backend's own implementation gives the
answer; observers wrap it (``hookimpl(wrapper=True)``) to watch or time calls.
Async hooks return awaitables; an observer wrapping one sees the awaitable.

``conveyor.rules`` is the executable form of these docstrings (one pure function
per rule) and ``conveyor.testing.rules_table`` the cases that hold a backend to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import datetime

from conveyor.context import WorkerInfo
from conveyor.expose import Filter, QueueInfo, RunningWorker, Statistic
from conveyor.markers import hookspec
from conveyor.middleware import Middleware
from conveyor.outcome import Outcome
from conveyor.task import Task, TaskResult
from conveyor.task_id import TaskId

# --- Backend (required trait) -------------------------------------------------


@hookspec(firstresult=True)
def poll(worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
    """Return the stream of tasks claimed for ``worker``. Required.

    Each ``Task`` yielded is claimed: status ``RUNNING``, ``attempt`` counted,
    ``lock_by=worker.name``, a fresh ``lease_token`` and a ``lease_until``
    deadline. ``None`` means nothing is ready now: the worker emits Idle and
    asks again; a backend that can wait for a push should wait a little
    before yielding ``None`` rather than make the worker spin (the worker paces
    repeated ``None`` itself too, but a poll that never awaits starves the
    event loop). Ready means status ``PENDING``/``FAILED`` with ``run_at <= now``.

    Order: higher ``priority`` first; within a priority, earliest ``run_at``
    first, then lowest id (FIFO: a task's place in line is the moment it became
    due). So a released or abandoned task, whose ``run_at`` is unchanged, goes
    back to its old place near the head; a retry takes its place at its retry
    ``run_at``; a task resumed by id (``run_at`` = now) joins at the back of the
    tasks already due.

    A task whose lease expired is not handed out again by ``poll`` until
    ``resume_abandoned`` puts it back. An exception raised by the iterator is
    logged by the worker, which retries with backoff; ``BackendUnavailable``
    says the backend cannot be reached. The worker pulls one task per free
    slot: never claim ahead of demand. The worker may cancel a poll that is
    waiting for work (on stop and pause): a cancelled wait must claim nothing.
    """


@hookspec(firstresult=True)
def heartbeat(worker: WorkerInfo) -> Awaitable[None]:
    """Keep ``worker`` alive: extend the leases it holds and refresh its registration.

    Called by the worker at a fixed interval shorter than the lease. Only
    leases still running are extended: a lease whose deadline has passed stays
    expired (``resume_abandoned`` may take the task back at any moment; until
    it does, an ack carrying the token is still accepted). A backend may also
    resume abandoned tasks here. An exception is logged and retried.
    """


@hookspec(firstresult=True)
def middleware() -> Sequence[Middleware]:
    """Middleware the backend wants around every handler run, outermost first."""


@hookspec(firstresult=True)
def close() -> Awaitable[None]:
    """Release what the backend opened (connections, file handles, locks). Idempotent."""


# --- Ack ----------------------------------------------------------------------


@hookspec(firstresult=True)
def ack(task: Task[bytes], outcome: Outcome) -> Awaitable[None]:
    """Record the outcome of the attempt ``task`` (as ``poll`` handed it out) ran.

    ``Done`` → ``DONE`` with the result; ``Retry`` → ``FAILED`` with
    ``last_error`` to run again at the retry's ``run_at`` (its place in line is
    that time), or ``KILLED`` (``run_at`` unchanged) if ``attempt >= max_attempts``;
    ``Kill`` → ``KILLED`` with ``last_error``;
    ``Release`` → ``PENDING`` with this attempt uncounted and ``run_at``
    unchanged (it keeps its place in line). The lease is cleared. Raise
    ``StaleLease`` if the stored task no longer holds ``task.lease_token``,
    including when it no longer exists (finished and vacuumed meanwhile). A
    backend without ``ack`` is at-most-once: ``poll`` removes what it hands out.
    """


# --- TaskSink -----------------------------------------------------------------


@hookspec(firstresult=True)
def push(tasks: Sequence[Task[bytes]]) -> Awaitable[Sequence[TaskId]]:
    """Store ``tasks`` (new, ``PENDING``), all or none, and return their ids in order.

    The facade has already encoded args and assigned ids; a backend may keep
    them. Every field is stored as given, ``name`` and ``meta`` included. All
    or none holds across a crash: after one, either every task of the call is
    there or none is. On return the tasks are as durable as the backend promises.
    """


@hookspec(firstresult=True)
def push_weak(tasks: Sequence[Task[bytes]]) -> Awaitable[Sequence[TaskId]]:
    """Store ``tasks`` like ``push``, for payloads of any type, not only the ``args_type``.

    The facade skips its ``args_type`` check before calling this hook (WeakTaskSink).
    """


# --- Task management ----------------------------------------------------------


@hookspec(firstresult=True)
def fetch_by_id(task_id: TaskId) -> Awaitable[Task[bytes] | None]:
    """The stored task whose id is ``task_id``, in any status; ``None`` if there is none."""


@hookspec(firstresult=True)
def update(task: Task[bytes]) -> Awaitable[None]:
    """Overwrite the stored task with ``task.id``; raise ``TaskNotFound`` if absent.

    What may change: ``args``, ``priority``, ``run_at``, ``max_attempts``,
    ``meta``, ``name``, ``result``, ``last_error`` and ``status``. What may not:
    ``id`` and ``queue`` (the task stays where it is), ``attempt`` and the lease
    (``lock_by``, ``lease_token``, ``lease_until``): the stored values are kept,
    whatever ``task`` carries, so an update can neither forge nor break a claim.
    A status change must be allowed by ``Status.can_become`` and may neither
    enter nor leave ``RUNNING``/``QUEUED`` (claims and acks do that), else
    ``InvalidTransition``; ``max_attempts`` below the stored ``attempt`` (or
    below 1) is a ``ValueError``. A waiting task takes its place in line by its
    new ``priority`` and ``run_at``.
    """


@hookspec(firstresult=True)
def reschedule(task: Task[bytes], run_at: datetime) -> Awaitable[None]:
    """Make the task ``PENDING`` to run at ``run_at``, lease cleared.

    A ``PENDING`` task only moves in time (its status and attempt unchanged; a
    lease token it carries is stale, since no one holds it); a
    ``FAILED`` one becomes ``PENDING`` with its attempts kept; a held one
    (``RUNNING``/``QUEUED``) gets its current attempt back, as ``Release``
    does, so no later claim exceeds ``max_attempts``. A finished task
    (``DONE``/``KILLED``) is refused with ``InvalidTransition``: ``resume_by_id``
    brings a killed task back. If ``task`` carries a lease token, the stored task
    must still hold it (else ``StaleLease``). Raise ``TaskNotFound`` if absent.
    """


@hookspec(firstresult=True)
def vacuum() -> Awaitable[int]:
    """Delete ``DONE`` and ``KILLED`` tasks of every queue; return how many were removed.

    Nothing else is ever deleted: waiting, held and failed tasks stay as they are.
    A backend may also forget workers whose registration has expired.
    """


@hookspec(firstresult=True)
def resume_by_id(task_id: TaskId) -> Awaitable[bool]:
    """Make task ``task_id``, if ``FAILED``, ``KILLED``, ``RUNNING`` or ``QUEUED``, ``PENDING``
    with ``run_at`` = now (the back of the tasks already due), lease cleared.

    Attempts restart from 0 for a killed task (a deliberate second chance); a
    failed task keeps its count; a held one gets its current attempt back, as
    ``Release`` does, so no later claim exceeds ``max_attempts``. The holder's
    later ack is refused (``StaleLease``). Return whether something was
    resumed; ``False`` for ``DONE``, ``PENDING`` or an unknown id.
    """


@hookspec(firstresult=True)
def resume_abandoned() -> Awaitable[int]:
    """Put back tasks whose lease deadline passed (their worker presumed dead).

    The lost attempt stays counted: a task with attempts left becomes
    ``PENDING`` with ``run_at`` unchanged (its old place in line); one at
    ``max_attempts`` becomes ``KILLED``. Either way ``last_error`` says its
    worker was lost, and the lease is cleared, so the old holder's ack is
    refused. A lease has expired once ``now >= lease_until``. Return how many
    were touched.
    """


@hookspec(firstresult=True)
def register_worker(worker: WorkerInfo) -> Awaitable[None]:
    """Record ``worker`` so ``list_workers`` shows it; heartbeats keep it fresh."""


# --- Expose (listings and metrics) --------------------------------------------


@hookspec(firstresult=True)
def list_tasks(queue: str, filter: Filter) -> Awaitable[Sequence[Task[bytes]]]:
    """One page of ``queue``'s tasks matching ``filter``, oldest (lowest id) first.

    ``filter.status`` and ``filter.name``, when set, must both match; the page is
    ``filter.offset`` matching tasks in, at most ``filter.limit`` long.
    """


@hookspec(firstresult=True)
def list_all_tasks(filter: Filter) -> Awaitable[Sequence[Task[bytes]]]:
    """One page of tasks of every queue matching ``filter``, oldest (lowest id) first,
    as ``list_tasks`` pages one queue."""


@hookspec(firstresult=True)
def list_queues() -> Awaitable[Sequence[QueueInfo]]:
    """Every queue that holds tasks or workers, with its statistics."""


@hookspec(firstresult=True)
def list_workers(queue: str | None) -> Awaitable[Sequence[RunningWorker]]:
    """Registered workers of ``queue``, or of every queue when ``None``."""


@hookspec(firstresult=True)
def metrics(queue: str | None) -> Awaitable[Sequence[Statistic]]:
    """Statistics of ``queue``, or of the whole store when ``None``."""


# --- WaitForCompletion ---------------------------------------------------------


@hookspec(firstresult=True)
def wait_for(task_ids: Sequence[TaskId], timeout: float | None) -> AsyncIterator[TaskResult[bytes]]:
    """Yield the result of each of ``task_ids`` once, as it reaches ``DONE`` or ``KILLED``.

    Ends when every id has been reported; raise ``TimeoutError`` after
    ``timeout`` seconds (``None``: no limit) and ``TaskNotFound`` for an
    unknown id. Must not busy-poll.
    """


@hookspec(firstresult=True)
def check_status(task_ids: Sequence[TaskId]) -> Awaitable[Sequence[TaskResult[bytes]]]:
    """Results of those of ``task_ids`` that are ``DONE`` or ``KILLED`` now, without waiting."""


# --- Migrate -----------------------------------------------------------------


@hookspec(firstresult=True)
def migrate(apply: bool) -> Awaitable[str]:
    """Bring the backend's storage layout (a database schema) to the version this code needs.

    Return the statements that take the store from its current version to the
    needed one, as text ('' when it is current); run them too when ``apply`` is
    true (then idempotent and safe from several processes at once). With
    ``apply`` false nothing is changed: the text is for teams that run
    migrations themselves.
    """


# --- ConfigExt and MakeShared ------------------------------------------------


@hookspec(firstresult=True)
def get_queue() -> str:
    """The name of the queue this backend serves and pushes to by default."""


@hookspec(firstresult=True)
def make_shared(queue: str) -> object:
    """A new backend plugin object for ``queue`` over this one's store and connection.

    It does not see other queues' tasks; closing it does not close the store
    while another user of the store is open.
    """
