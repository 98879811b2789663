"""The contract's rules as a table of cases, run through the pure rules or a real backend.

Each ``Case`` builds a start state with ``setup`` steps (push, claim, ack, time
moving, ...), applies one ``op`` and says what must follow: an error (the
task then unchanged), a returned value, fields of the task's record. The
steps run on two drivers: ``RulesDriver`` applies ``conveyor.rules`` to
records in a dict; ``BackendDriver`` calls an opened ``Backend``'s hooks under
a ``ManualClock``. A backend's test::

    @pytest.mark.parametrize("case", CASES, ids=str)
    async def test_rules_table(case):
        clock = ManualClock(T0)
        backend = open_my_backend(clock=clock, lease_seconds=LEASE_SECONDS)  # fresh, empty
        async with backend:
            await check_backend(case, backend, clock)

``check_backend`` runs the case on both drivers, asserts the table's
expectations and that the backend's observation equals the pure rules' (the
whole record: status, attempts, times to the millisecond, lease, error), and
skips (``pytest.skip``) a case needing a capability the backend lacks.
The cases themselves are at the end of this module (``CASES``).
"""

# ruff: noqa: S105, S106 - "token" here names which lease a step carries, not a secret

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

import attrs
import pytest

from conveyor import rules
from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.clock import ManualClock, at
from conveyor.context import WorkerInfo
from conveyor.errors import StaleLease, TaskNotFound
from conveyor.outcome import Done, Kill, Outcome, Release, Retry
from conveyor.plugin import implemented_hooks
from conveyor.status import InvalidTransition, Status
from conveyor.task import Task
from conveyor.task_id import TaskId

__all__ = [
    "CASES", "LEASE_SECONDS", "LOST", "T0", "WORKER", "Ack", "Advance", "BackendDriver", "Case",
    "Claim", "Driver", "Expect", "Heartbeat", "Observed", "Push", "Reschedule", "ResumeAbandoned",
    "ResumeById", "RulesDriver", "Snapshot", "Update", "Vacuum", "check_backend", "check_case",
    "rules_observed",
    "run_case",
]  # fmt: skip

T0 = 1_800_000_000.0
"""Where the case's ``ManualClock`` starts; every time in the table is an offset from it."""
LEASE_SECONDS = 30.0
"""The lease the backend under test must be opened with."""
WORKER = WorkerInfo("rules-table-worker", "default")
"""The worker every claim and heartbeat of the table is made for."""
LOST = "<another error>"
"""A ``last_error`` the table did not supply (a backend's own "worker lost" text)."""
ERRORS = ("boom", "fatal", "edited")
"""The only ``last_error`` texts the table supplies; others read as ``LOST``."""

UNCHECKED: Any = type("Unchecked", (), {"__repr__": lambda self: "UNCHECKED"})()
"""An expectation the case leaves open."""

# --- steps -----------------------------------------------------------------------


@attrs.frozen
class Push:
    """Push a task (it becomes the next index: 0, 1, ...), due ``delay`` seconds from now."""

    max_attempts: int = 3
    priority: int = 0
    delay: float = 0.0


@attrs.frozen
class Claim:
    """Poll once for ``WORKER``; returns the index of the task claimed, or ``None``."""


@attrs.frozen
class Ack:
    """Ack ``task``'s last claimed view with ``outcome`` (done, retry, kill, release).

    ``token``: ``held`` (the view as last claimed), ``previous`` (the claim before
    that: a worker presumed dead) or ``forged`` (a token the store never gave).
    A retry runs again ``delay`` seconds from now; retry and kill carry ``error``.
    """

    outcome: str
    task: int = 0
    delay: float = 0.0
    error: str = "boom"
    token: str = "held"


@attrs.frozen
class Advance:
    """Move the clock ``seconds`` forward."""

    seconds: float


@attrs.frozen
class Heartbeat:
    """A heartbeat of ``WORKER``."""


@attrs.frozen
class Reschedule:
    """Reschedule ``task`` to ``delay`` seconds from now, given its view (``token``:
    ``held``/``forged``) or by id (``none``: an operator's action)."""

    task: int = 0
    delay: float = 0.0
    token: str = "none"


@attrs.frozen
class ResumeById:
    """``resume_by_id`` of ``task``; returns whether it resumed."""

    task: int = 0


@attrs.frozen
class ResumeAbandoned:
    """``resume_abandoned``; returns how many tasks it touched."""


@attrs.frozen
class Update:
    """``update`` the stored ``task`` with ``changes`` (field -> value; ``run_at`` is an
    offset from ``T0``; ``lease_token``/``attempt``/``queue`` are forgeries it must ignore)."""

    changes: Mapping[str, Any]
    task: int = 0


@attrs.frozen
class Vacuum:
    """``vacuum``; returns how many tasks it deleted."""


Step = (
    Push | Claim | Ack | Advance | Heartbeat | Reschedule | ResumeById | ResumeAbandoned | Update
    | Vacuum
)  # fmt: skip

NEEDS: Mapping[type, Capability | None] = {
    Push: Capability.PUSH, Claim: None, Ack: Capability.ACK, Advance: None, Heartbeat: None,
    Reschedule: Capability.RESCHEDULE, ResumeById: Capability.RESUME_BY_ID,
    ResumeAbandoned: Capability.RESUME_ABANDONED, Update: Capability.UPDATE,
    Vacuum: Capability.VACUUM,
}  # fmt: skip

# --- what is observed -------------------------------------------------------------


@attrs.frozen
class Snapshot:
    """A stored task as the table compares it: times as milliseconds after ``T0``;
    ``lease`` is ``none``, ``same`` (the token the worker held) or ``new``."""

    status: Status
    queue: str
    attempt: int
    max_attempts: int
    run_at: int
    priority: int
    result: bytes | None
    last_error: str | None
    lock_by: str | None
    lease: str
    lease_until: int | None

    @classmethod
    def of(cls, task: Task[bytes], held: str | None, home: str) -> Snapshot:
        """The snapshot of ``task``; ``held``: the token of the worker's view of it;
        ``home``: the queue the case pushed to (read as ``home``)."""
        token = task.lease_token
        lease = "none" if token is None else "same" if token == held else "new"
        error = task.last_error
        return cls(
            task.status, "home" if task.queue == home else task.queue, task.attempt,
            task.max_attempts, _ms(task.run_at.timestamp()),
            task.priority, task.result, error if error is None or error in ERRORS else LOST,
            task.lock_by, lease,
            None if task.lease_until is None else _ms(task.lease_until.timestamp()),
        )  # fmt: skip


def _ms(when: float) -> int:
    return round((when - T0) * 1000)


@attrs.frozen
class Observed:
    """What a case's ``op`` did: the error type it raised (by name), what it returned,
    the subject task before and after (``None``: absent)."""

    error: str | None
    returned: Any
    before: Snapshot | None
    after: Snapshot | None


# --- drivers -------------------------------------------------------------------------


class Driver(Protocol):
    """Where the steps run: the pure rules or a backend."""

    clock: ManualClock
    queue: str

    async def push(self, step: Push) -> TaskId: ...
    async def claim(self) -> Task[bytes] | None: ...
    async def ack(self, view: Task[bytes], outcome: Outcome) -> None: ...
    async def heartbeat(self) -> None: ...
    async def reschedule(self, view: Task[bytes], run_at_offset: float) -> None: ...
    async def resume_by_id(self, task_id: TaskId) -> bool: ...
    async def resume_abandoned(self) -> int: ...
    async def update(self, task_id: TaskId, changes: Mapping[str, Any]) -> None: ...
    async def vacuum(self) -> int: ...
    async def fetch(self, task_id: TaskId) -> Task[bytes] | None: ...


def _changed(task: Task[Any], changes: Mapping[str, Any]) -> Task[Any]:
    values = dict(changes)
    if "run_at" in values:
        values["run_at"] = at(T0 + values["run_at"])
    return attrs.evolve(task, **values)


class RulesDriver:
    """The steps applied by ``conveyor.rules`` to records in a dict."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.queue = "default"
        self.tasks: dict[TaskId, Task[bytes]] = {}

    def _now(self) -> Any:
        return at(self.clock.time())

    async def push(self, step: Push) -> TaskId:
        now = self._now()
        task: Task[bytes] = Task(
            TaskId.new(), b"{}", "default", run_at=now + timedelta(seconds=step.delay),
            max_attempts=step.max_attempts, priority=step.priority,
        )  # fmt: skip
        self.tasks[task.id] = task
        return task.id

    async def claim(self) -> Task[bytes] | None:
        now = self._now()
        ready = [t for t in self.tasks.values() if rules.is_ready(t, now)]
        if not ready:
            return None
        first = min(ready, key=rules.order_key)
        claimed = rules.claim(first, WORKER.name, now=now, lease_seconds=LEASE_SECONDS)
        self.tasks[first.id] = claimed
        return claimed

    async def ack(self, view: Task[bytes], outcome: Outcome) -> None:
        self.tasks[view.id] = rules.settle(self.tasks.get(view.id), view, outcome)

    async def heartbeat(self) -> None:
        now = self._now()
        for tid, task in self.tasks.items():
            self.tasks[tid] = rules.extend(task, WORKER.name, now=now, lease_seconds=LEASE_SECONDS)

    async def reschedule(self, view: Task[bytes], run_at_offset: float) -> None:
        when = at(self.clock.time() + run_at_offset)
        self.tasks[view.id] = rules.reschedule(self.tasks.get(view.id), view, when)

    async def resume_by_id(self, task_id: TaskId) -> bool:
        task = self.tasks.get(task_id)
        resumed = None if task is None else rules.resume(task, self._now())
        if resumed is not None:
            self.tasks[task_id] = resumed
        return resumed is not None

    async def resume_abandoned(self) -> int:
        count = 0
        for tid, task in list(self.tasks.items()):
            back = rules.abandon(task, self._now())
            if back is not None:
                self.tasks[tid] = back
                count += 1
        return count

    async def update(self, task_id: TaskId, changes: Mapping[str, Any]) -> None:
        stored = self.tasks.get(task_id)
        if stored is None:
            raise TaskNotFound(f"no task {task_id}")
        self.tasks[task_id] = rules.update(stored, _changed(stored, changes))

    async def vacuum(self) -> int:
        gone = [tid for tid, task in self.tasks.items() if rules.vacuumable(task)]
        for tid in gone:
            del self.tasks[tid]
        return len(gone)

    async def fetch(self, task_id: TaskId) -> Task[bytes] | None:
        return self.tasks.get(task_id)


class BackendDriver:
    """The steps as calls on an opened ``Backend`` (its hooks, or the facade where it adds
    nothing but encoding), time moved on ``clock``."""

    def __init__(self, backend: Backend, clock: ManualClock) -> None:
        self.backend = backend
        self.clock = clock
        self.queue = backend.queue
        self.worker = WorkerInfo(WORKER.name, backend.queue)

    def missing(self, case: Case) -> list[str]:
        """The capabilities ``case`` needs that the backend lacks."""
        needed = {NEEDS[type(s)] for s in (*case.setup, case.op)} | {Capability.FETCH_BY_ID}
        lacking = sorted(c.value for c in needed if c is not None and not self.backend.supports(c))
        beats = any(isinstance(s, Heartbeat) for s in (*case.setup, case.op))
        if beats and "heartbeat" not in implemented_hooks(self.backend.plugin):
            lacking.append("heartbeat")
        return lacking

    async def push(self, step: Push) -> TaskId:
        return await self.backend.push(
            {}, delay=step.delay, max_attempts=step.max_attempts, priority=step.priority
        )

    async def claim(self) -> Task[bytes] | None:
        stream = self.backend.poll(self.worker)
        try:
            return await anext(aiter(stream))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def ack(self, view: Task[bytes], outcome: Outcome) -> None:
        await self.backend.hooks.ack(view, outcome)

    async def heartbeat(self) -> None:
        await self.backend.heartbeat(self.worker)

    async def reschedule(self, view: Task[bytes], run_at_offset: float) -> None:
        if view.lease_token is None:
            await self.backend.reschedule(view.id, delay=run_at_offset)
        else:
            await self.backend.reschedule(view, delay=run_at_offset)

    async def resume_by_id(self, task_id: TaskId) -> bool:
        return await self.backend.resume_by_id(task_id)

    async def resume_abandoned(self) -> int:
        return await self.backend.resume_abandoned()

    async def update(self, task_id: TaskId, changes: Mapping[str, Any]) -> None:
        stored = await self.backend.fetch_by_id(task_id)
        if stored is None:
            raise TaskNotFound(f"no task {task_id}")
        await self.backend.update(_changed(stored, changes))

    async def vacuum(self) -> int:
        return await self.backend.vacuum()

    async def fetch(self, task_id: TaskId) -> Task[bytes] | None:
        return await self.backend.hooks.fetch_by_id(task_id)


# --- cases and running them ------------------------------------------------------------


@attrs.frozen
class Expect:
    """What a case's op must do. ``error``: the exception type (the task is then
    unchanged); ``returned``: its value (for a claim: the index claimed, or
    ``None``); ``record``: fields of the subject task's ``Snapshot`` after it
    (``run_at``/``lease_until`` as seconds after ``T0``); ``gone``: it was deleted."""

    error: type[Exception] | None = None
    returned: Any = UNCHECKED
    record: Mapping[str, Any] = attrs.field(factory=dict)
    gone: bool = False


@attrs.frozen
class Case:
    """``setup`` steps, then ``op``; ``expect`` says what ``op`` did to task ``subject``."""

    name: str
    setup: tuple[Step, ...]
    op: Step
    expect: Expect
    subject: int = 0

    def __str__(self) -> str:
        return self.name


async def _apply(
    step: Step, driver: Driver, ids: list[TaskId], views: dict[int, list[Task[bytes]]]
) -> Any:
    if isinstance(step, Push):
        ids.append(await driver.push(step))
        return len(ids) - 1
    if isinstance(step, Advance):
        driver.clock.advance(step.seconds)
        return None
    if isinstance(step, Claim):
        task = await driver.claim()
        if task is None:
            return None
        index = ids.index(task.id)
        views.setdefault(index, []).append(task)
        return index
    if isinstance(step, Heartbeat):
        return await driver.heartbeat()
    if isinstance(step, ResumeAbandoned):
        return await driver.resume_abandoned()
    if isinstance(step, Vacuum):
        return await driver.vacuum()
    tid = ids[step.task]
    if isinstance(step, ResumeById):
        return await driver.resume_by_id(tid)
    if isinstance(step, Update):
        return await driver.update(tid, step.changes)
    seen = views.get(step.task, [])
    view = seen[-2] if step.token == "previous" else seen[-1] if seen else await driver.fetch(tid)
    assert view is not None, f"task {step.task} of the case is gone"
    if step.token == "forged":
        view = attrs.evolve(view, lease_token="forged-token")
    elif step.token == "none":
        view = attrs.evolve(view, lease_token=None)
    if isinstance(step, Reschedule):
        return await driver.reschedule(view, step.delay)
    outcome: Outcome
    now = at(driver.clock.time())
    if step.outcome == "done":
        outcome = Done(b'"ok"')
    elif step.outcome == "retry":
        outcome = Retry(now + timedelta(seconds=step.delay), step.error)
    elif step.outcome == "kill":
        outcome = Kill(step.error)
    else:
        outcome = Release()
    return await driver.ack(view, outcome)


async def run_case(case: Case, driver: Driver) -> Observed:
    """Run ``case`` on ``driver`` and observe its op (setup steps must not raise)."""
    ids: list[TaskId] = []
    views: dict[int, list[Task[bytes]]] = {}
    for step in case.setup:
        await _apply(step, driver, ids, views)
    held = views.get(case.subject, [None])[-1]
    token = None if held is None else held.lease_token

    async def snapshot() -> Snapshot | None:
        task = await driver.fetch(ids[case.subject])
        return None if task is None else Snapshot.of(task, token, driver.queue)

    before = await snapshot()
    error: str | None = None
    returned: Any = None
    try:
        returned = await _apply(case.op, driver, ids, views)
    except (StaleLease, TaskNotFound, InvalidTransition, ValueError) as exc:
        error = type(exc).__name__
    return Observed(error, returned, before, await snapshot())


def check_case(case: Case, seen: Observed) -> None:
    """Assert that ``seen`` is what ``case`` expects (``AssertionError`` saying where)."""
    want = case.expect
    name = want.error.__name__ if want.error is not None else None
    assert seen.error == name, f"{case}: expected error {name}, got {seen.error}"
    if want.error is not None:
        assert seen.after == seen.before, f"{case}: a refused write changed the task"
    if want.returned is not UNCHECKED:
        assert seen.returned == want.returned, (
            f"{case}: returned {seen.returned!r}, expected {want.returned!r}"
        )
    if want.gone:
        assert seen.after is None, f"{case}: the task should be gone: {seen.after}"
        return
    assert seen.after is not None, f"{case}: the task is gone"
    for field, value in want.record.items():
        got = getattr(seen.after, field)
        if field in ("run_at", "lease_until") and value is not None:
            value = round(value * 1000)
        assert got == value, f"{case}: {field} is {got!r}, expected {value!r}"


async def rules_observed(case: Case) -> Observed:
    """``case`` run through the pure rules."""
    return await run_case(case, RulesDriver(ManualClock(T0)))


async def check_backend(case: Case, backend: Backend, clock: ManualClock) -> None:
    """Run ``case`` on ``backend`` (fresh, opened with ``clock`` at ``T0`` and
    ``LEASE_SECONDS``); assert the table's expectation and equality with the pure rules."""
    driver = BackendDriver(backend, clock)
    lacking = driver.missing(case)
    if lacking:
        pytest.skip(f"backend {backend.name!r} lacks {', '.join(lacking)}")
    assert clock.time() == T0, "open the backend with ManualClock(T0)"
    seen = await run_case(case, driver)
    check_case(case, seen)
    pure = await rules_observed(case)
    assert seen == pure, f"{case}: {backend.name} differs from conveyor.rules:\n{seen}\n{pure}"


# --- the cases ----------------------------------------------------------------------
# Recipes build task 0 with ``m`` max attempts; none moves the clock except
# ``expired``, so every time in them is 0 (retries are due at once).

L = LEASE_SECONDS
S = Status
_RUN: dict[str, Any] = {"status": S.RUNNING, "lock_by": WORKER.name, "lease": "new"}
_FREE: dict[str, Any] = {"lock_by": None, "lease": "none", "lease_until": None}


def pending(m: int = 3, a: int = 0) -> tuple[Step, ...]:
    """Task 0 ``PENDING`` after ``a`` failed attempts (resumed by id when ``a > 0``)."""
    return failed(m, a) + ((ResumeById(),) if a else ())


def failed(m: int = 3, a: int = 1) -> tuple[Step, ...]:
    """Task 0 ``FAILED`` after ``a`` attempts, each retried at once with ``boom``."""
    return (Push(m), *(a * (Claim(), Ack("retry"))))


def running(m: int = 3, a: int = 1) -> tuple[Step, ...]:
    """Task 0 held by ``WORKER`` on attempt ``a``, lease until ``L``."""
    return (*failed(m, a - 1), Claim())


def expired(m: int = 3, a: int = 1) -> tuple[Step, ...]:
    """Task 0 held on attempt ``a`` with its lease just expired (now == lease_until)."""
    return (*running(m, a), Advance(L))


def done(m: int = 3) -> tuple[Step, ...]:
    """Task 0 ``DONE`` on its first attempt."""
    return (*running(m), Ack("done"))


def killed(m: int = 3, a: int = 1) -> tuple[Step, ...]:
    """Task 0 ``KILLED`` by a ``Kill`` on attempt ``a``."""
    return (*running(m, a), Ack("kill", error="fatal"))


def _case(name: str, setup: tuple[Step, ...], op: Step, **expect: Any) -> Case:
    subject = expect.pop("subject", 0)
    fields = {k: expect.pop(k) for k in ("error", "returned", "gone") if k in expect}
    return Case(name, setup, op, Expect(record=expect, **fields), subject)


def _claims() -> list[Case]:
    c = _case
    return [
        c("claim pending", pending(), Claim(), returned=0, **_RUN, attempt=1, lease_until=L),
        c("claim failed a1/3", failed(3, 1), Claim(), returned=0, **_RUN, attempt=2),
        c("claim failed a2/3", failed(3, 2), Claim(), returned=0, **_RUN, attempt=3),
        c("claim pending a1/3 (resumed)", pending(3, 1), Claim(), returned=0, attempt=2),
        c("claim keeps last_error", failed(3, 1), Claim(), returned=0, last_error="boom"),
        c("claim before run_at", (Push(delay=10),), Claim(), returned=None, status=S.PENDING),
        c("claim at run_at", (Push(delay=10), Advance(10)), Claim(), returned=0, run_at=10,
          lease_until=10 + L),
        c("claim before retry time", (*running(), Ack("retry", delay=10)), Claim(),
          returned=None, status=S.FAILED),
        c("claim held task", running(), Claim(), returned=None, lease="same"),
        c("claim expired lease", expired(), Claim(), returned=None, status=S.RUNNING),
        c("claim done", done(), Claim(), returned=None, status=S.DONE),
        c("claim killed", killed(), Claim(), returned=None, status=S.KILLED),
    ]  # fmt: skip


def _acks() -> list[Case]:
    c, cases = _case, []
    for m in (1, 3):
        for a in sorted({1, m}):
            at_max = a >= m
            cases += [
                c(f"done a{a}/{m}", running(m, a), Ack("done"), status=S.DONE, attempt=a,
                  result=b'"ok"', **_FREE),
                c(f"retry a{a}/{m}", running(m, a), Ack("retry", delay=10),
                  status=S.KILLED if at_max else S.FAILED, attempt=a, last_error="boom",
                  run_at=0 if at_max else 10, **_FREE),
                c(f"kill a{a}/{m}", running(m, a), Ack("kill", error="fatal"), status=S.KILLED,
                  attempt=a, last_error="fatal", **_FREE),
                c(f"release a{a}/{m}", running(m, a), Ack("release"), status=S.PENDING,
                  attempt=a - 1, run_at=0, last_error="boom" if a > 1 else None, **_FREE),
            ]  # fmt: skip
    cases += [
        c("claim after release a1/1", (*running(1), Ack("release")), Claim(), returned=0,
          attempt=1, **_RUN),
        c("retry after time moved", (*running(), Advance(5)), Ack("retry", delay=10),
          status=S.FAILED, run_at=15),
        c("done keeps last_error", running(3, 2), Ack("done"), last_error="boom"),
        c("kill keeps result none", running(), Ack("kill", error="fatal"), result=None),
    ]  # fmt: skip
    for outcome in ("done", "retry", "kill", "release"):
        cases += [
            c(f"{outcome} forged token", running(), Ack(outcome, token="forged"),
              error=StaleLease),
            c(f"{outcome} after done", done(), Ack(outcome), error=StaleLease),
            c(f"{outcome} expired, not yet resumed", expired(), Ack(outcome), error=None,
              lease="none"),
            c(f"{outcome} after resume_abandoned", (*expired(), ResumeAbandoned()),
              Ack(outcome), error=StaleLease),
        ]  # fmt: skip
    cases += [
        c("done after vacuum", (*done(), Vacuum()), Ack("done"), error=StaleLease, gone=True),
        c("release after vacuum", (*killed(), Vacuum()), Ack("release"), error=StaleLease,
          gone=True),
        c("done after resume_by_id", (*running(), ResumeById()), Ack("done"), error=StaleLease),
        c("previous holder after a new claim", (*running(), ResumeById(), Claim()),
          Ack("done", token="previous"), error=StaleLease, status=S.RUNNING, attempt=1),
        c("done on a pending task", pending(), Ack("done"), error=StaleLease),
        c("retry on a failed task", failed(), Ack("retry"), error=StaleLease),
        c("kill on a killed task", killed(), Ack("kill"), error=StaleLease),
    ]  # fmt: skip
    return cases


def _leases() -> list[Case]:
    c = _case
    return [
        c("heartbeat at 10", (*running(), Advance(10)), Heartbeat(), lease_until=10 + L,
          lease="same", status=S.RUNNING),
        c("heartbeat just in time", (*running(), Advance(L - 1)), Heartbeat(),
          lease_until=2 * L - 1),
        c("heartbeat at the deadline", expired(), Heartbeat(), lease_until=L, lease="same"),
        c("heartbeat past the deadline", (*running(), Advance(L + 1)), Heartbeat(),
          lease_until=L),
        c("heartbeat then resume_abandoned", (*expired(), Heartbeat()), ResumeAbandoned(),
          returned=1, status=S.PENDING),
        c("heartbeat leaves pending", pending(), Heartbeat(), lease="none", lease_until=None),
        c("heartbeat leaves done", done(), Heartbeat(), status=S.DONE, lease_until=None),
        c("abandon before the deadline", (*running(), Advance(L - 1)), ResumeAbandoned(),
          returned=0, status=S.RUNNING),
        c("abandon a1/3", expired(), ResumeAbandoned(), returned=1, status=S.PENDING,
          attempt=1, run_at=0, last_error=LOST, **_FREE),
        c("abandon a2/3 keeps run_at", (*failed(3, 1), Advance(3), Claim(), Advance(L)),
          ResumeAbandoned(), returned=1, status=S.PENDING, attempt=2, run_at=0),
        c("abandon a3/3", expired(3, 3), ResumeAbandoned(), returned=1, status=S.KILLED,
          attempt=3, last_error=LOST, **_FREE),
        c("abandon a1/1", expired(1, 1), ResumeAbandoned(), returned=1, status=S.KILLED),
        c("abandon pending", pending(), ResumeAbandoned(), returned=0, status=S.PENDING),
        c("abandon failed", failed(), ResumeAbandoned(), returned=0, status=S.FAILED),
        c("abandon done", (*done(), Advance(L)), ResumeAbandoned(), returned=0, status=S.DONE),
        c("claim after abandon", (*expired(), ResumeAbandoned()), Claim(), returned=0,
          attempt=2, lease_until=2 * L, **_RUN),
    ]  # fmt: skip


def _resumes() -> list[Case]:
    c, r = _case, ResumeById()
    resumed = {"returned": True, "status": S.PENDING, **_FREE}
    return [
        c("resume failed a1/3", (*failed(3, 1), Advance(7)), r, **resumed, attempt=1, run_at=7),
        c("resume failed a2/3", failed(3, 2), r, **resumed, attempt=2, last_error="boom"),
        c("resume killed", killed(), r, **resumed, attempt=0, last_error="fatal"),
        c("resume killed by retries", (*running(3, 3), Ack("retry")), r, **resumed, attempt=0),
        c("resume running a1/3", running(), r, **resumed, attempt=0),
        c("resume running a3/3", running(3, 3), r, **resumed, attempt=2),
        c("resume expired a2/3", expired(3, 2), r, **resumed, attempt=1),
        c("claim after resume of a1/1", (*running(1), r), Claim(), returned=0, attempt=1),
        c("resume done", done(), r, returned=False, status=S.DONE),
        c("resume pending", pending(), r, returned=False, status=S.PENDING, attempt=0),
        c("resume pending a1/3", pending(3, 1), r, returned=False, attempt=1),
        c("resume vacuumed", (*done(), Vacuum()), r, returned=False, gone=True),
    ]  # fmt: skip


def _reschedules() -> list[Case]:
    c = _case
    moved = {"status": S.PENDING, **_FREE}
    return [
        c("reschedule pending", pending(), Reschedule(delay=10), **moved, attempt=0, run_at=10),
        c("reschedule pending now", (*pending(), Advance(4)), Reschedule(), run_at=4),
        c("reschedule delayed earlier", (Push(delay=50),), Reschedule(delay=5), run_at=5),
        c("reschedule pending a1/3", pending(3, 1), Reschedule(delay=1), attempt=1),
        c("reschedule failed a1/3", failed(), Reschedule(delay=10), **moved, attempt=1,
          last_error="boom"),
        c("reschedule running by id", running(), Reschedule(delay=10), **moved, attempt=0),
        c("reschedule running a3/3 by id", running(3, 3), Reschedule(), **moved, attempt=2),
        c("reschedule expired by id", expired(3, 2), Reschedule(), **moved, attempt=1),
        c("reschedule with held token", running(3, 2), Reschedule(delay=3, token="held"),
          **moved, attempt=1, run_at=3),
        c("reschedule forged token", running(), Reschedule(token="forged"), error=StaleLease),
        c("reschedule after done, held token", done(), Reschedule(token="held"),
          error=StaleLease),
        c("reschedule after release, held token", (*running(), Ack("release")),
          Reschedule(token="held"), error=StaleLease),
        c("reschedule done", done(), Reschedule(), error=InvalidTransition, status=S.DONE),
        c("reschedule killed", killed(), Reschedule(), error=InvalidTransition),
        c("reschedule vacuumed", (*done(), Vacuum()), Reschedule(), error=TaskNotFound,
          gone=True),
        c("claim after reschedule of a1/1", (*running(1), Reschedule()), Claim(), returned=0,
          attempt=1),
        c("claim before rescheduled time", (*running(), Reschedule(delay=10)), Claim(),
          returned=None),
    ]  # fmt: skip


def _updates() -> list[Case]:
    c = _case
    u = Update
    return [
        c("update priority", pending(), u({"priority": 5}), priority=5, status=S.PENDING),
        c("update run_at", pending(), u({"run_at": 100}), run_at=100),
        c("update max_attempts", pending(), u({"max_attempts": 1}), max_attempts=1),
        c("update max_attempts to attempt", failed(3, 2), u({"max_attempts": 2}),
          max_attempts=2),
        c("update max_attempts below attempt", failed(3, 2), u({"max_attempts": 1}),
          error=ValueError),
        c("update max_attempts 0", pending(), u({"max_attempts": 0}), error=ValueError),
        c("update last_error", failed(), u({"last_error": "edited"}), last_error="edited"),
        c("update pending to killed", pending(), u({"status": S.KILLED}), status=S.KILLED),
        c("update failed to pending", failed(), u({"status": S.PENDING}), status=S.PENDING,
          attempt=1),
        c("update killed to pending", killed(), u({"status": S.PENDING}), status=S.PENDING,
          attempt=1),
        c("update pending to running", pending(), u({"status": S.RUNNING}),
          error=InvalidTransition),
        c("update pending to queued", pending(), u({"status": S.QUEUED}),
          error=InvalidTransition),
        c("update pending to done", pending(), u({"status": S.DONE}), error=InvalidTransition),
        c("update running to done", running(), u({"status": S.DONE}), error=InvalidTransition),
        c("update running to pending", running(), u({"status": S.PENDING}),
          error=InvalidTransition),
        c("update done to pending", done(), u({"status": S.PENDING}), error=InvalidTransition),
        c("update running priority", running(), u({"priority": 3}), priority=3,
          status=S.RUNNING, lease="same", lease_until=L),
        c("update cannot forge a lease", running(), u({"lease_token": "forged-token"}),
          lease="same"),
        c("update cannot forge attempt", pending(), u({"attempt": 2}), attempt=0),
        c("update cannot move queue", failed(), u({"queue": "elsewhere"}), queue="home"),
        c("update vacuumed", (*done(), Vacuum()), u({"priority": 1}), error=TaskNotFound,
          gone=True),
        c("claim after update to later", (*pending(), u({"run_at": 100})), Claim(),
          returned=None),
    ]  # fmt: skip


def _vacuums() -> list[Case]:
    c, v = _case, Vacuum()
    return [
        c("vacuum done", done(), v, returned=1, gone=True),
        c("vacuum killed", killed(), v, returned=1, gone=True),
        c("vacuum pending", pending(), v, returned=0, status=S.PENDING),
        c("vacuum failed", failed(), v, returned=0, status=S.FAILED),
        c("vacuum running", running(), v, returned=0, status=S.RUNNING, lease="same"),
        c("vacuum expired", expired(), v, returned=0, status=S.RUNNING),
    ]


def _orders() -> list[Case]:
    c, claim = _case, Claim()
    two = (Push(), Advance(1), Push())  # task 0 due at 0, task 1 at 1
    return [
        c("order: FIFO", two, claim, returned=0),
        c("order: same instant, lower id first", (Push(), Push()), claim, returned=0),
        c("order: priority first", (Push(), Push(priority=5)), claim, returned=1, subject=1),
        c("order: priority beats run_at", (Push(), Advance(5), Push(priority=1)), claim,
          returned=1, subject=1),
        c("order: delayed priority waits", (Push(), Push(priority=9, delay=10)), claim,
          returned=0),
        c("order: retry at its retry time", (*two, claim, Advance(1), Ack("retry")), claim,
          returned=1, subject=1),
        c("order: released keeps its place", (*two, claim, Advance(1), Ack("release")), claim,
          returned=0),
        c("order: abandoned keeps its place", (*two, claim, Advance(L), ResumeAbandoned()),
          claim, returned=0),
        c("order: resumed joins the back",
          (*two, claim, Ack("retry", delay=100), Advance(1), ResumeById()), claim, returned=1,
          subject=1),
        c("order: rescheduled to now", (Push(), Push(), Advance(1), Reschedule()), claim,
          returned=1, subject=1),
        c("order: updated priority", (Push(), Push(), Update({"priority": 1}, task=1)), claim,
          returned=1, subject=1),
        c("order: updated run_at", (Push(), Advance(1), Push(), Update({"run_at": 2})), claim,
          returned=1, subject=1),
    ]  # fmt: skip


CASES: list[Case] = [
    *_claims(), *_acks(), *_leases(), *_resumes(), *_reschedules(), *_updates(), *_vacuums(),
    *_orders(),
]  # fmt: skip
"""Every case of the table."""
