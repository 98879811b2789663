"""Middleware: the retry policy, timeouts, concurrency limits, custom and backend middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

import conveyor
from conveyor import Abort, Backend, ManualClock, RetryAfter, Status, Worker, hookimpl
from conveyor.middleware import (
    ConcurrencyLimit,
    Invocation,
    Middleware,
    Next,
    RetryPolicy,
    TaskTimeout,
    Timeout,
)
from conveyor.outcome import Kill, Retry


def test_retry_policy_maps_errors_to_outcomes(clock: ManualClock) -> None:
    policy = RetryPolicy(base=2, max_delay=8, clock=clock)
    kill = policy.outcome(Abort("no"), 1, clock)
    assert kill == Kill("Abort: no")
    later = policy.outcome(RetryAfter(timedelta(minutes=1)), 3, clock)
    assert isinstance(later, Retry) and later.run_at == clock.now() + timedelta(minutes=1)
    for attempt, cap in ((1, 2), (2, 4), (3, 8), (30, 8)):
        for _ in range(50):
            retry = policy.outcome(ValueError("x"), attempt, clock)
            assert isinstance(retry, Retry) and retry.error == "ValueError: x"
            assert clock.now() <= retry.run_at <= clock.now() + timedelta(seconds=cap)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        RetryPolicy(base=0)
    with pytest.raises(ValueError, match="Timeout"):
        Timeout(0)
    with pytest.raises(ValueError, match="ConcurrencyLimit"):
        ConcurrencyLimit(0)
    with pytest.raises(ValueError, match="RetryAfter"):
        RetryAfter(-1)


async def test_timeout_cancels_an_async_handler(backend: Backend) -> None:
    cancelled = asyncio.Event()
    task_id = await backend.push("slow")

    async def slow(_: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await Worker(backend, slow, middleware=[Timeout(0.02)]).run(burst=True)
    assert cancelled.is_set()
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.FAILED
    assert task.last_error is not None and task.last_error.startswith(TaskTimeout.__name__)


async def test_concurrency_limit_per_key(backend: Backend) -> None:
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    for n in range(12):
        await backend.push({"tenant": "a" if n % 2 else "b", "n": n})

    async def handle(job: dict[str, Any]) -> None:
        tenant = job["tenant"]
        running[tenant] = running.get(tenant, 0) + 1
        peak[tenant] = max(peak.get(tenant, 0), running[tenant])
        await asyncio.sleep(0.001)
        running[tenant] -= 1

    limit = ConcurrencyLimit(2, key=lambda inv: inv.args["tenant"])
    await Worker(backend, handle, concurrency=8, middleware=[limit]).run(burst=True)
    assert peak == {"a": 2, "b": 2}
    assert limit.running("a") == 0
    done = await backend.list_tasks(status=Status.DONE, page_size=100)
    assert len(done) == 12


async def test_middleware_runs_outermost_first_and_may_decide_the_outcome(
    backend: Backend,
) -> None:
    calls: list[str] = []

    class Tag:
        def __init__(self, name: str) -> None:
            self.name = name

        async def __call__(self, invocation: Invocation, call_next: Next) -> Any:
            calls.append(f"{self.name}>")
            result = await call_next(invocation)
            calls.append(f"<{self.name}")
            return result

    async def veto(invocation: Invocation, call_next: Next) -> Any:
        if invocation.args == "forbidden":
            return Kill("vetoed by policy")
        return await call_next(invocation)

    vetoed = await backend.push("forbidden")
    allowed = await backend.push("fine")

    async def handle(value: str) -> str:
        calls.append("handler")
        return value.upper()

    await Worker(backend, handle, concurrency=1, middleware=[Tag("a"), Tag("b"), veto]).run(
        burst=True
    )
    assert calls == ["a>", "b>", "<b", "<a", "a>", "b>", "handler", "<b", "<a"]
    killed = await backend.fetch_by_id(vetoed)
    assert killed is not None and (killed.status, killed.last_error) == (
        Status.KILLED,
        "vetoed by policy",
    )
    done = await backend.fetch_by_id(allowed)
    assert done is not None and done.result == "FINE"


async def test_backend_middleware_wraps_every_run() -> None:
    seen: list[Any] = []

    async def record(invocation: Invocation, call_next: Next) -> Any:
        seen.append((invocation.args, invocation.context.attempt))
        return await call_next(invocation)

    class WithMiddleware:
        def __init__(self) -> None:
            self.inner = conveyor.open("memory")

        @hookimpl
        def poll(self, worker: conveyor.WorkerInfo) -> Any:
            return self.inner.hooks.poll(worker)

        @hookimpl
        def middleware(self) -> Sequence[Middleware]:
            return [record]

        @hookimpl
        async def push(self, tasks: Any) -> Any:
            return await self.inner.hooks.push(tasks)

    backend = Backend(WithMiddleware(), name="with-middleware")
    await backend.push("x")

    async def handle(_: str) -> None:
        return None

    await Worker(backend, handle).run(burst=True)
    assert seen == [("x", 1)]


async def test_a_user_retry_policy_replaces_the_default(
    backend: Backend, clock: ManualClock
) -> None:
    task_id = await backend.push("x")

    async def fail(_: str) -> None:
        raise RuntimeError("again")

    await Worker(backend, fail, middleware=[RetryPolicy(base=500, max_delay=500)]).run(burst=True)
    task = await backend.fetch_by_id(task_id)
    assert task is not None and task.status is Status.FAILED
    # The worker gave the policy its (manual) clock: run_at is measured from it.
    assert clock.now() <= task.run_at <= clock.now() + timedelta(seconds=500)
