"""Named tasks (issue 13, part 1): ``App``, ``@app.task``, pushes by name, routing workers.

Against the real memory backend; the worker runs in burst or drain mode, so
every test ends when the queue does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from typing import Any

import attrs
import pytest

import conveyor
from conveyor import App, Backend, PayloadError, Status, TaskContext, Worker
from conveyor.middleware.retry import RetryPolicy


@attrs.frozen
class Email:
    to: str
    subject: str = ""


@dataclasses.dataclass
class Report:
    month: int
    pages: list[int]


async def _by_name(backend: Backend) -> dict[str | None, list[conveyor.Task[Any]]]:
    found: dict[str | None, list[conveyor.Task[Any]]] = {}
    for task in await backend.list_all_tasks(page_size=100):
        found.setdefault(task.name, []).append(task)
    return found


async def test_one_worker_runs_many_task_types_on_one_queue_each_by_its_name(
    backend: Backend,
) -> None:
    app = App(backend)
    seen: dict[str, list[Any]] = {"email": [], "report": [], "plain": []}

    @app.task(name="mail.send")
    async def send(email: Email) -> str:
        seen["email"].append(email)
        return f"sent {email.to}"

    @app.task(name="reports.build")
    def build(report: Report, ctx: TaskContext) -> int:  # a plain function: a thread
        seen["report"].append((report, ctx.name))
        return sum(report.pages)

    @app.task(name="plain.add")
    async def add(numbers: list[int]) -> int:
        seen["plain"].append(numbers)
        return sum(numbers)

    for n in range(3):  # interleaved on one queue
        await send.push(Email(f"u{n}@example.com"))
        await build.push(Report(month=n + 1, pages=[n, 10]))
        await add.push([n, n])
    worker = app.worker(backend, handle_signals=False)
    assert worker.queues == ["default"]
    await worker.run(burst=True)

    assert worker.succeeded == 9 and worker.failed == 0
    assert [e.to for e in seen["email"]] == [f"u{n}@example.com" for n in range(3)]
    assert seen["report"] == [(Report(n + 1, [n, 10]), "reports.build") for n in range(3)]
    assert seen["plain"] == [[n, n] for n in range(3)]
    tasks = await _by_name(backend)
    assert [t.result for t in tasks["mail.send"]] == [f"sent u{n}@example.com" for n in range(3)]
    assert [t.result for t in tasks["reports.build"]] == [10, 11, 12]
    assert [t.result for t in tasks["plain.add"]] == [0, 2, 4]


async def test_an_unknown_name_kills_that_task_naming_the_known_ones_and_the_worker_goes_on(
    backend: Backend,
) -> None:
    app = App(backend)

    @app.task(name="known.one")
    async def one(_: Any) -> str:
        return "ran"

    @app.task(name="known.two")
    async def two(_: Any) -> str:
        return "ran"

    stray = await backend.push(1, name="not.registered")
    nameless = await backend.push(2)
    fine = await one.push(3)
    worker = app.worker(backend, handle_signals=False)
    await worker.run(burst=True)

    for task_id, what in ((stray, "no task named 'not.registered'"), (nameless, "has no name")):
        task = await backend.fetch_by_id(task_id)
        assert task is not None and task.status is Status.KILLED
        assert task.attempt == 1  # killed at once: retrying cannot find a handler
        assert what in str(task.last_error) and "known.one, known.two" in str(task.last_error)
    done = await backend.fetch_by_id(fine)
    assert done is not None and done.status is Status.DONE and done.result == "ran"
    assert worker.failed == 2 and worker.succeeded == 1


async def test_a_worker_on_a_subset_of_queues_leaves_the_others_alone(backend: Backend) -> None:
    app = App(backend)

    @app.task(queue="mail")
    async def send(email: Email) -> None:
        return None

    @app.task(queue="reports")
    async def build(report: Report) -> None:
        return None

    @app.task(queue="audit")
    async def audit(_: Any) -> None:
        return None

    mail = await send.push(Email("a@example.com"))
    report = await build.push(Report(1, []))
    audited = await audit.push("x")
    assert app.queues == ["audit", "mail", "reports"]
    worker = app.worker(backend, queues=["mail", "audit"], handle_signals=False)
    await worker.run(burst=True)

    states = {i: (await backend.fetch_by_id(i)).status for i in (mail, report, audited)}  # type: ignore[union-attr]
    assert states == {mail: Status.DONE, report: Status.PENDING, audited: Status.DONE}
    queued = await backend.fetch_by_id(report)
    assert queued is not None and queued.queue == "reports" and queued.name == build.name


async def test_every_queue_by_default_and_a_stop_stops_them_all(backend: Backend) -> None:
    app = App(backend)
    started = asyncio.Event()

    @app.task(queue="slow")
    async def slow(_: Any) -> str:
        started.set()
        await asyncio.sleep(0.05)
        return "finished"

    @app.task(queue="fast")
    async def fast(_: Any) -> None:
        return None

    task_id = await slow.push(None)
    worker = app.worker(backend, handle_signals=False)
    assert worker.queues == ["fast", "slow"]
    running = asyncio.create_task(worker.run())
    await started.wait()
    worker.stop()
    await running  # returns: both queues' workers stopped
    done = await backend.fetch_by_id(task_id)
    assert done is not None and done.status is Status.DONE  # the grace period let it finish
    assert all(w.state is conveyor.WorkerState.STOPPED for w in worker.workers)


async def test_a_payload_that_does_not_fit_raises_at_the_caller_and_stores_nothing(
    backend: Backend,
) -> None:
    app = App(backend)

    @app.task(name="mail.send")
    async def send(email: Email) -> None:
        return None

    @app.task(name="reports.build")
    async def build(report: Report) -> None:
        return None

    with pytest.raises(PayloadError, match=r"task mail.send: payload does not fit Email.*to"):
        await send.push({"subject": "no recipient"})
    with pytest.raises(PayloadError, match=r"task reports.build: payload does not fit Report"):
        await build.push({"month": "June", "pages": []})
    with pytest.raises(PayloadError, match=r"task mail\.send"):
        await send.push_many([Email("a@example.com"), {"subject": "no recipient"}])
    assert await backend.list_all_tasks() == []
    # What fits is accepted, whether the object or its plain form.
    await send.push({"to": "b@example.com"})
    await build.push(Report(6, [1]))
    assert len(await backend.list_all_tasks()) == 2


async def test_pushes_carry_the_tasks_name_and_defaults_and_push_options_override_them(
    backend: Backend,
) -> None:
    app = App(backend, queue="jobs")

    @app.task(priority=5, max_attempts=2)
    async def defaulted(_: Any) -> None:
        return None

    @app.task(name="custom.name", queue="mail")
    async def named(_: Any) -> None:
        return None

    first = await backend.fetch_by_id(await defaulted.push(1))
    assert first is not None
    assert first.name == f"{__name__}.{defaulted.__qualname__}"
    assert "test_pushes_carry" in first.name  # module.qualname
    assert (first.queue, first.priority, first.max_attempts) == ("jobs", 5, 2)
    second = await backend.fetch_by_id(
        await named.push(2, queue="other", priority=-1, max_attempts=7, delay=60)
    )
    assert second is not None
    assert (second.name, second.queue, second.priority, second.max_attempts) == (
        "custom.name", "other", -1, 7,
    )  # fmt: skip
    assert second.run_at > first.run_at
    assert await backend.list_all_tasks(name="custom.name") == [second]


async def test_each_task_has_its_own_retry_policy_and_time_limit(backend: Backend) -> None:
    app = App(backend)
    tries: list[int] = []

    @app.task(max_attempts=3, retry=RetryPolicy(base=0.01, max_delay=0.01))
    async def flaky(_: Any, ctx: TaskContext) -> str:
        tries.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "third time"

    @app.task(max_attempts=1, timeout=0.05)
    async def stuck(_: Any) -> None:
        await asyncio.sleep(30)

    flaky_id, stuck_id = await flaky.push(None), await stuck.push(None)
    await app.worker(backend, handle_signals=False).drain(within=60)

    done = await backend.fetch_by_id(flaky_id)
    assert done is not None and done.status is Status.DONE and done.result == "third time"
    assert tries == [1, 2, 3]
    killed = await backend.fetch_by_id(stuck_id)
    assert killed is not None and killed.status is Status.KILLED
    assert "TaskTimeout" in str(killed.last_error) and "0.05 s" in str(killed.last_error)


async def test_the_single_handler_worker_runs_every_task_whatever_its_name(
    backend: Backend,
) -> None:
    await backend.push(1, name="some.name")
    await backend.push(2)
    got: list[int] = []

    async def handler(n: int) -> None:
        got.append(n)

    worker = Worker(backend, handler, handle_signals=False)
    await worker.run(burst=True)
    assert got == [1, 2]


def test_names_are_unique_and_well_formed() -> None:
    app = App("memory://")

    @app.task(name="dup")
    def first(_: Any) -> None:
        return None

    def second(_: Any) -> None:
        return None

    with pytest.raises(ValueError, match="two tasks named 'dup'"):
        app.task(name="dup")(second)
    with pytest.raises(ValueError, match="non-empty string"):
        app.task(name="")(second)
    with pytest.raises(ValueError, match="queue"):
        app.task(queue="")(second)
    with pytest.raises(TypeError, match="takes no arguments"):
        app.task(lambda: None)
    assert first(None) is None  # the decorated function is still callable in place
    assert list(app.tasks) == ["dup"]


async def test_the_app_opens_its_url_on_first_use_and_closes_it() -> None:
    app = App("memory://")

    @app.task
    async def job(n: int) -> int:
        return n + 1

    task_id = await job.push(41)
    worker = app.worker(handle_signals=False)
    await worker.run(burst=True)
    result = await app.backend.fetch_by_id(task_id)
    assert result is not None and result.result == 42
    await app.aclose()


def test_an_app_that_never_pushes_from_sync_code_never_imports_the_blocking_api() -> None:
    code = (
        "import sys, asyncio, conveyor\n"
        "app = conveyor.App('memory://')\n"
        "@app.task\n"
        "async def job(n: int) -> None: pass\n"
        "asyncio.run(job.push(1))\n"
        "print('conveyor.blocking' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
