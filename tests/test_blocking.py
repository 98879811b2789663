"""conveyor.blocking against real stores: threads, fork, interpreter exit, misuse."""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sync_support import store_url

import conveyor
from conveyor import PayloadError, Status, Worker
from conveyor.blocking import BlockingBackend

# asyncio's debug mode (-X dev) reports any callback that ran past 100 ms: a fact of a
# loaded machine, not of the code, so it is the one line the exit test lets through.
_SLOW_CALLBACK = re.compile(r"Executing <.*> took \d+\.\d+ seconds")


@pytest.fixture(params=["json", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_url(request.param, tmp_path)


def _stored(url: str, ids: list[str]) -> list[conveyor.Task[object] | None]:
    """Each task as a fresh handle (another event loop, another connection) reads it."""

    async def read() -> list[conveyor.Task[object] | None]:
        async with conveyor.open(url) as backend:
            return [await backend.fetch_by_id(i) for i in ids]

    return asyncio.run(read())


def test_push_fetch_and_list_from_plain_code(url: str) -> None:
    with BlockingBackend(url) as tasks:
        task_id = tasks.push({"to": "ada"}, queue="mail", priority=3, meta={"k": "v"})
        task = tasks.fetch_by_id(task_id)
        assert task is not None
        assert (task.args, task.queue, task.priority, task.status) == (
            {"to": "ada"},
            "mail",
            3,
            Status.PENDING,
        )
        assert [t.id for t in tasks.list_tasks("mail")] == [task_id]
        assert "mail" in [q.name for q in tasks.list_queues()]
        many = tasks.push_many([{"n": 1}, {"n": 2}], queue="mail")
        assert len(set(many)) == 2
        assert tasks.check_status(many) == []  # none finished


def test_a_shared_queue_over_the_same_store(url: str) -> None:
    tasks = BlockingBackend(url)
    mail = tasks.make_shared("mail")
    task_id = mail.push({"to": "ada"})
    assert [t.id for t in tasks.list_tasks("mail")] == [task_id]
    assert mail.queue == "mail" and tasks.queue == "default"
    mail.close()
    tasks.close()


def test_sixteen_threads_pushing_at_once_store_every_task(url: str) -> None:
    tasks = BlockingBackend(url)
    per_thread, threads = 25, 16
    ids: list[list[str]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def pusher(index: int) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                ids[index].append(str(tasks.push({"thread": index, "n": n})))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=pusher, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    tasks.close()
    assert errors == []
    every = [i for chunk in ids for i in chunk]
    assert len(every) == per_thread * threads
    assert len(set(every)) == len(every)
    stored = _stored(url, every)
    assert all(task is not None for task in stored)
    assert sorted((t.args["thread"], t.args["n"]) for t in stored if t is not None) == sorted(
        (i, n) for i in range(threads) for n in range(per_thread)
    )


def _fork_pusher(tasks: BlockingBackend, count: int) -> tuple[int, int]:
    """Fork a child that pushes ``count`` tasks with the inherited object; (pid, pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the ids (or the error) and leave at once
        code = 1
        try:
            os.close(read)
            ids = [str(tasks.push({"who": "child", "n": n})) for n in range(count)]
            os.write(write, " ".join(ids).encode())
            code = 0
        except BaseException as exc:
            os.write(write, f"ERROR {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _collect(pid: int, read: int, deadline: float) -> str:
    """What the child reported, once it exited 0; a child still running at ``deadline``
    (stuck on a connection it shares with another process) is killed and fails the test."""
    chunks = []
    while True:
        ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"forked child {pid} was still pushing after 60 s: it hangs")
        chunk = os.read(read, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    reported = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 0, reported
    return reported


def test_forked_children_push_while_the_parent_keeps_pushing(url: str) -> None:
    # gunicorn --preload: the parent opened the backend (loop, lanes, connections),
    # then forks workers that all push at once, while the parent itself goes on.
    tasks = BlockingBackend(url)
    parent_ids = [str(tasks.push({"who": "parent", "n": -1}))]
    tasks.list_queues()  # the private loop's connection too
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_pushing() -> None:
        n = 0
        try:
            while not stop.is_set():
                parent_ids.append(str(tasks.push({"who": "parent", "n": n})))
                n += 1
        except BaseException as exc:
            failures.append(exc)

    pusher = threading.Thread(target=keep_pushing)
    try:
        children = [_fork_pusher(tasks, 30) for _ in range(3)]
        pusher.start()
        deadline = time.monotonic() + 60
        reports = [_collect(pid, read, deadline) for pid, read in children]
    finally:
        stop.set()
        pusher.join()
    assert failures == []
    child_ids = [report.split() for report in reports]
    assert [len(ids) for ids in child_ids] == [30, 30, 30]
    after = str(tasks.push({"who": "parent", "n": "after"}))  # the parent still works
    tasks.close()
    everything = parent_ids + [i for ids in child_ids for i in ids] + [after]
    assert len(set(everything)) == len(everything)
    stored = _stored(url, everything)
    assert all(task is not None for task in stored)
    for ids in child_ids:
        assert [t.args["n"] for t in _stored(url, ids) if t is not None] == list(range(30))


EXIT_SCRIPT = """
import sys
from conveyor.blocking import BlockingBackend

tasks = BlockingBackend(sys.argv[1])
print(tasks.push({"left": "open"}), flush=True)
tasks.wait_one  # touched, never closed: the interpreter's exit must close it
"""


def test_an_unclosed_backend_is_closed_at_exit_without_warnings(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", textwrap.dedent(EXIT_SCRIPT), url],
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails here
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if not _SLOW_CALLBACK.fullmatch(line)] == []
    (task,) = _stored(url, [done.stdout.strip()])
    assert task is not None and task.args == {"left": "open"}


def test_wait_one_and_wait_for_with_a_worker_running(url: str) -> None:
    tasks = BlockingBackend(url)
    ids = tasks.push_many([{"n": n} for n in range(3)])

    def double(args: dict[str, int]) -> int:
        return args["n"] * 2

    async def work() -> None:
        async with conveyor.open(url) as backend:
            await Worker(backend, double, handle_signals=False).run(burst=True)

    thread = threading.Thread(target=asyncio.run, args=(work(),))
    thread.start()
    result = tasks.wait_one(ids[0], timeout=30)
    assert (result.status, result.result) == (Status.DONE, 0)
    got = {str(r.task_id): r.result for r in tasks.wait_for(ids, timeout=30)}
    assert got == {str(ids[0]): 0, str(ids[1]): 2, str(ids[2]): 4}
    thread.join()
    tasks.close()


def test_a_bad_payload_fails_in_the_callers_thread(url: str) -> None:
    with BlockingBackend(url) as tasks:
        with pytest.raises(PayloadError):
            tasks.push(object())
        with pytest.raises(ValueError, match="max_attempts"):
            tasks.push({}, max_attempts=0)
        assert tasks.list_tasks() == []


def test_calling_it_from_its_own_loop_raises_at_once(url: str) -> None:
    with BlockingBackend(url) as tasks:

        async def reenter(backend: conveyor.Backend) -> None:
            tasks.fetch_by_id("06h3agfdac000fag0tu9rus9cc")

        with pytest.raises(RuntimeError, match="from inside its own event loop"):
            tasks.run(reenter)


def test_from_a_thread_running_an_event_loop_it_still_works(url: str) -> None:
    with BlockingBackend(url) as tasks:

        async def view() -> str:
            return str(tasks.push({"from": "async code"}))  # blocks this loop, but works

        task_id = asyncio.run(view())
        task = tasks.fetch_by_id(task_id)
        assert task is not None and task.args == {"from": "async code"}


def test_an_opened_backend_is_refused_with_the_fix(tmp_path: Path) -> None:
    backend = conveyor.open(f"json://{tmp_path}/t.json")
    with pytest.raises(TypeError, match=r"BlockingBackend\(lambda: conveyor\.open"):
        BlockingBackend(backend)  # type: ignore[arg-type]


def test_after_close_calls_say_so(url: str) -> None:
    tasks = BlockingBackend(url)
    tasks.push({})
    tasks.close()
    tasks.close()
    with pytest.raises(conveyor.BackendClosed):
        tasks.push({})
