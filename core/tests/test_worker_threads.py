"""Plain-function handlers past their time limit: honest about the thread that runs on
(issue 14, "still open")."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import CancelledError

import pytest

from conveyor import Backend, Status, TaskContext, Worker
from conveyor.events import Event, Success
from conveyor.middleware import Timeout
from conveyor.worker.threads import HandlerThreads


async def test_a_thread_past_its_time_limit_never_reports_done_and_keeps_its_slot(
    backend: Backend,
) -> None:
    slow = await backend.push("slow", max_attempts=1)
    quick = await backend.push("quick")
    returned = threading.Event()
    events: list[Event] = []

    def handle(kind: str, ctx: TaskContext) -> str:
        if kind == "slow":
            time.sleep(1.0)
            returned.set()
            return "late"
        return "in time"

    worker = Worker(
        backend, handle, concurrency=1, middleware=[Timeout(0.3)], listeners=[events.append]
    )
    await asyncio.wait_for(worker.run(burst=True), timeout=30)
    # The quick task ran after the slow thread returned, with its whole time limit: it did
    # not wait for a thread behind the stuck one (which timed it out before it began).
    assert returned.is_set()
    done = await backend.fetch_by_id(quick)
    assert done is not None and (done.status, done.result) == (Status.DONE, "in time")
    # The late thread's "late" was dropped: the attempt ended at its deadline.
    stuck = await backend.fetch_by_id(slow)
    assert stuck is not None and stuck.status is Status.KILLED and stuck.result is None
    assert stuck.last_error is not None and "TaskTimeout" in stuck.last_error
    assert [e.result for e in events if isinstance(e, Success)] == ["in time"]


# A worker whose plain-function handler blocks for good; SIGTERM with a short grace.
STUCK_THREAD = textwrap.dedent(
    """
    import asyncio, json, threading
    import conveyor

    async def main():
        backend = conveyor.open("memory")
        task_id = await backend.push("x")

        def handle(_):
            print("BLOCKED", flush=True)
            threading.Event().wait()

        await conveyor.Worker(backend, handle, grace_period=0.2).run()
        task = await backend.fetch_by_id(task_id)
        print(json.dumps({"status": task.status.value, "attempt": task.attempt}), flush=True)

    asyncio.run(main())
    """
)


def test_a_handler_thread_that_never_returns_does_not_keep_the_process_alive() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", STUCK_THREAD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "BLOCKED"
    child.send_signal(signal.SIGTERM)
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail("the process waited for the blocked handler thread at exit")
    assert child.returncode == 0, err
    assert json.loads(out.strip()) == {"status": "Pending", "attempt": 0}  # released


def test_handler_threads_run_jobs_and_report_what_they_raise() -> None:
    threads = HandlerThreads(2, "test")
    assert threads.submit(lambda a, b: a + b, 2, 3).result(timeout=10) == 5
    with pytest.raises(SystemExit):
        threads.submit(sys.exit, 3).result(timeout=10)
    started, release = threading.Semaphore(0), threading.Event()

    def block() -> None:
        started.release()
        release.wait()

    busy = [threads.submit(block) for _ in range(2)]
    assert started.acquire(timeout=10) and started.acquire(timeout=10)  # both threads busy
    waiting = threads.submit(lambda: "never")
    threads.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(CancelledError):
        waiting.result(timeout=10)
    with pytest.raises(RuntimeError, match="shut down"):
        threads.submit(lambda: None)
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("test_"))
    release.set()
    for future in busy:
        assert future.result(timeout=10) is None
