"""``conveyor worker MODULE:APP`` and ``--processes N``, in real subprocesses over a json store."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import conveyor
from conveyor import Status

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import clean_env, one_line_error
from cli_support import conveyor as run

APP = """
import os
import time
from pathlib import Path

import attrs

from conveyor import App, TaskContext

app = App()


@attrs.frozen
class Email:
    to: str


@app.task(name="mail.send", queue="mail")
async def send(email: Email) -> str:
    return "sent to " + email.to


@app.task(name="math.double")
def double(n: int) -> int:
    return n * 2


@app.task(name="math.negate")
async def negate(n: int) -> int:
    return -n


@app.task(name="slow")
def slow(n: int, ctx: TaskContext) -> int:
    with Path(os.environ["SLOW_LOG"]).open("a") as log:
        log.write(f"{os.getpid()} {ctx.attempt}\\n")
    if ctx.attempt == 1:
        time.sleep(300)  # until SIGKILLed
    return n
"""

WAIT = 120.0
"""A bound on waits for child processes (never a speed assertion: a slow machine waits)."""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "myapp.py").write_text(APP)
    return tmp_path


def _push(url: str, *items: tuple[str, object, str | None]) -> list[conveyor.TaskId]:
    async def go() -> list[conveyor.TaskId]:
        async with conveyor.open(url) as backend:
            return [await backend.push(args, name=name, queue=q) for name, args, q in items]

    return asyncio.run(go())


def _tasks(url: str) -> dict[conveyor.TaskId, conveyor.Task[object]]:
    async def go() -> dict[conveyor.TaskId, conveyor.Task[object]]:
        async with conveyor.open(url) as backend:
            return {t.id: t for t in await backend.list_all_tasks(page_size=100)}

    return asyncio.run(go())


def test_an_app_worker_routes_many_task_types_and_kills_unknown_names(project: Path) -> None:
    url = f"json://{project}/tasks.json"
    ids = _push(
        url,
        ("math.double", 21, None),
        ("math.negate", 5, None),
        ("mail.send", {"to": "ada@example.com"}, "mail"),
        ("math.gone", 1, None),
    )
    result = run("worker", "myapp:app", "-b", url, "--burst", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "app tasks: mail.send, math.double, math.negate, slow; queues: default, mail" in (
        result.stderr
    )
    tasks = _tasks(url)
    assert [tasks[i].result for i in ids[:3]] == [42, -5, "sent to ada@example.com"]
    gone = tasks[ids[3]]
    assert gone.status is Status.KILLED
    assert "no task named 'math.gone'" in str(gone.last_error)
    assert "mail.send, math.double, math.negate, slow" in str(gone.last_error)
    assert "Traceback" not in result.stderr


def test_an_app_worker_serves_only_the_queues_it_is_given(project: Path) -> None:
    url = f"json://{project}/tasks.json"
    mail, number = _push(url, ("mail.send", {"to": "a@b"}, "mail"), ("math.double", 1, None))
    result = run("worker", "myapp:app", "-b", url, "--burst", "--queues", "mail", cwd=project)
    assert result.returncode == 0, result.stderr
    tasks = _tasks(url)
    assert tasks[mail].status is Status.DONE and tasks[number].status is Status.PENDING


def test_queues_is_for_an_app_only(project: Path) -> None:
    (project / "plain.py").write_text("def handle(n):\n    return n\n")
    url = f"json://{project}/tasks.json"
    result = run("worker", "plain:handle", "-b", url, "--queues", "a,b", cwd=project)
    assert result.returncode == 1
    assert "--queues is for an app" in one_line_error(result)


class _Lines:
    """A child's stderr, read line by line in a thread, waited on with a bound."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stderr is not None
        stream = process.stderr
        threading.Thread(target=lambda: [self._queue.put(x) for x in stream], daemon=True).start()

    def until(self, found: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if found(line):
                return line
        raise AssertionError(f"never saw {what}; stderr so far:\n{''.join(self.seen)}")

    def rest(self) -> str:
        while True:
            try:
                self.seen.append(self._queue.get(timeout=1))
            except queue.Empty:
                return "".join(self.seen)


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def _log(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [
        (int(p), int(a)) for p, a in (line.split() for line in path.read_text().split("\n") if line)
    ]


def test_processes_replace_a_killed_child_rerun_its_task_and_stop_on_sigterm(
    project: Path,
) -> None:
    url = f"json://{project}/tasks.json?lease_seconds=1"
    log = project / "slow.log"
    (task_id,) = _push(url, ("slow", 7, None))
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "myapp:app", "-b", url,
         "--processes", "2", "--concurrency", "1", "--queues", "default"],
        cwd=project,
        env=clean_env({"SLOW_LOG": str(log)}),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines = _Lines(supervisor)
    try:
        for _ in range(2):
            lines.until(lambda s: "supervisor: worker process" in s and "started" in s, "a start")
        _eventually(lambda: len(_log(log)) == 1, "the first attempt started")
        ((victim, attempt),) = _log(log)
        assert attempt == 1
        os.kill(victim, signal.SIGKILL)
        lines.until(lambda s: f"worker process {victim} was killed by SIGKILL" in s, "the death")
        lines.until(lambda s: "supervisor: worker process" in s and "started" in s, "a new child")
        # The lease lapses (1 s), a live worker resumes the task, and attempt 2 runs.
        _eventually(lambda: _tasks(url)[task_id].status is Status.DONE, "the task re-run")
        runs = _log(log)
        assert [a for _, a in runs] == [1, 2] and runs[1][0] != victim
        assert _tasks(url)[task_id].result == 7
        # Both children are up (their workers logged a start) before the stop.
        lines.until(lambda s: " started on json queue 'default'" in s, "a worker start")
        supervisor.send_signal(signal.SIGTERM)
        status = supervisor.wait(timeout=WAIT)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    output = lines.rest()
    assert status == 0, "".join(lines.seen)
    assert "supervisor: SIGTERM, stopping 2 worker process(es) gracefully" in output
    assert output.count("exited with status 0") == 2, output
    assert "all worker processes stopped (exit status 0)" in output
    assert "Traceback" not in output


def test_processes_that_cannot_start_stop_the_supervisor_with_their_status(project: Path) -> None:
    result = run(
        "worker", "myapp:app", "-b", "nosuchbackend://x", "--processes", "2", cwd=project,
        timeout=WAIT,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "no backend named 'nosuchbackend'" in result.stderr
    assert "a restart cannot fix that, stopping all" in result.stderr
    assert "Traceback" not in result.stderr
