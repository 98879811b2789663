"""What a person sees on an 80-column terminal: nothing cut, key columns whole, the live
worker line on its own line, and Ctrl-C honoured at once (issue 14, items 5 and 6).

Each command runs on a real pseudo-terminal whose output goes through a VT100
emulator (pyte), so the assertions are about the screen, not the bytes.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import ManualClock, WorkerInfo

sys.path.insert(0, str(Path(__file__).parent))
from cli_support.terminal import Terminal

pytestmark = pytest.mark.skipif(
    "json" not in conveyor.registry.names(),
    reason="the json backend (plugins/json) is not installed",
)

LONG_QUEUE = "newsletter-weekly-digest"
ERROR = "the mail server refused the message because the mailbox is full; quota 100% of 2 GB"


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _store(folder: Path) -> str:
    return f"json://{folder / 'tasks.json'}"


def _killed_tasks(url: str) -> list[Any]:
    """Two tasks killed with ERROR (one in a long-named queue) and one pending."""

    def refuse(args: Any) -> None:
        raise ValueError(ERROR)

    async def make() -> list[Any]:
        async with conveyor.open(url) as backend:
            await backend.push(
                {"to": "someone.with.a.long.name@example.com", "subject": "hello there"},
                queue=LONG_QUEUE,
                max_attempts=1,
            )
            await backend.push({"to": "bob@example.com"}, max_attempts=1)
            await conveyor.Worker(backend.make_shared(LONG_QUEUE), refuse).run(burst=True)
            await conveyor.Worker(backend, refuse).run(burst=True)
            await backend.push({"to": "cy@example.com"})
            return await backend.list_all_tasks(page_size=100)

    return asyncio.run(make())


def _rows(lines: list[str], ids: list[str]) -> dict[str, list[str]]:
    """Each task's screen lines: from the line holding its id to the next id's."""
    starts = sorted((i, t) for i, line in enumerate(lines) for t in ids if t in line)
    assert len(starts) == len(ids), "\n".join(lines)  # each id once, whole, on one line
    rows = {}
    for n, (start, task_id) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        rows[task_id] = lines[start:end]
    return rows


@pytest.mark.parametrize("columns", [80, 120])
def test_tasks_at_80_columns_keep_id_queue_status_whole_and_cut_nothing(
    tmp_path: Path, columns: int
) -> None:
    url = _store(tmp_path)
    tasks = _killed_tasks(url)
    with Terminal("-b", url, "tasks", cwd=tmp_path, columns=columns) as term:
        assert term.finish() == 0, term.text()
        lines = term.lines()
    assert all(len(line) <= columns for line in lines)
    header = next((line for line in lines if line.startswith("id ")), None)
    # At 120 columns a table fits; at 80 each task is a block (key cells first).
    assert (header is not None) == (columns == 120), "\n".join(lines)
    rows = _rows(lines, [str(t.id) for t in tasks])
    for task in tasks:
        block = rows[str(task.id)]
        assert re.search(rf"\b{task.queue}\b.*\b{task.status.value}\b", block[0]), block
        error = task.last_error
        shown_error = "-" if error is None else error if len(error) <= 40 else error[:39] + "…"
        if header is not None:
            args_at, outcome_at = header.index("args"), header.index("outcome")
            outcome = " ".join(line[outcome_at:].strip() for line in block)
            args = " ".join(line[args_at:outcome_at].strip() for line in block)
        else:
            outcome = args = " ".join(line.strip() for line in block[1:])
            assert "outcome" in args and "args" in args
        # Folded across lines, but every character is there, in order; the cut is shown.
        assert _squeeze(shown_error) in _squeeze(outcome), block
        assert _squeeze(conveyor.JsonCodec().encode(task.args).decode())[:39] in _squeeze(args)


def _register(url: str, queue: str, name: str, seconds_ago: float) -> None:
    async def register() -> None:
        clock = ManualClock(time.time() - seconds_ago)
        async with conveyor.open(url, clock=clock) as backend:
            await backend.register_worker(WorkerInfo(name, queue))

    asyncio.run(register())


@pytest.mark.parametrize("queue", ["mail", LONG_QUEUE])
def test_queues_at_80_columns_keep_the_workers_column_and_every_value(
    tmp_path: Path, queue: str
) -> None:
    url = _store(tmp_path)

    async def fill() -> None:
        async with conveyor.open(url) as backend:
            await backend.push_many([1, 2, 3], queue=queue)
            await backend.push(4)

    asyncio.run(fill())
    _register(url, queue, "alive-worker", seconds_ago=0)
    _register(url, queue, "burst-worker-that-exited", seconds_ago=3600)
    with Terminal("-b", url, "queues", cwd=tmp_path, columns=80) as term:
        assert term.finish() == 0, term.text()
        lines = term.lines()
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    header = "\n".join(lines[:2])
    if "workers" in header:  # a table fits: the queue's row ends with its live workers
        row = next(line for line in lines if line.startswith(f"{queue} "))
        assert row.split()[-1] == "1", text
        assert row.split()[1] == "3", text  # Pending jobs, whole
        assert "Success" in header and "%" in row
    else:  # one block per queue
        start = next(i for i, line in enumerate(lines) if line.strip() == queue)
        block = " ".join(lines[start : start + 4])
        assert "workers 1" in block and "Pending jobs 3" in block, text
    assert queue != LONG_QUEUE or "workers" not in header  # 24 characters: blocks at 80


LIVE = re.compile(r"worker w · done [\d,]+ · failed [\d,]+ · in flight \d+ · [\d,.]+ tasks/s")


def test_the_live_line_stays_on_its_own_line_while_log_records_print(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(
        "import time\n\n\ndef refuse(args):\n    time.sleep(0.08)\n"
        "    raise ValueError(f'no {args}')\n"
    )
    url = _store(tmp_path)

    async def fill() -> list[str]:
        async with conveyor.open(url) as backend:
            return [str(i) for i in await backend.push_many(list(range(15)), max_attempts=1)]

    ids = asyncio.run(fill())
    both = []

    def check() -> None:
        lines = term.lines()
        live = [line for line in lines if line.startswith("worker w · done")]
        for line in live:
            # Glued output looked like "worker w · … 0.0 tasks/s[12/01/26 …] WARNING …".
            assert LIVE.fullmatch(line.strip()), "\n".join(lines)
        if live and any("WARNING" in line for line in lines):
            both.append(lines)

    with Terminal(
        "-b", url, "worker", "jobs:refuse", "--burst", "-c", "1", "--name", "w",
        cwd=tmp_path, columns=80,
    ) as term:  # fmt: skip
        status = term.finish(timeout=60, each=check)
        screen = term.text()
    assert status == 0, screen
    assert both, "the live line and log records were never on screen together:\n" + screen
    for task_id in ids:  # every record is whole on the screen, none overwritten
        assert task_id in screen, screen
    assert "stopped:done0·failed15" in _squeeze(screen), screen


def test_push_from_stdin_on_a_terminal_stops_at_the_first_ctrl_c(tmp_path: Path) -> None:
    url = _store(tmp_path)
    with Terminal("-b", url, "push", "--from", "-", cwd=tmp_path, columns=80) as term:
        term.wait_for(lambda t: "pushing" in t.text())  # the progress bar: it reads stdin now
        term.type(b'{"n": 1}\n{"n": 2}\n')
        term.wait_for(lambda t: '{"n": 2}' in t.text())
        time.sleep(0.5)  # the lines are read; the command now waits for more
        term.type(b"\x03")  # one Ctrl-C
        started = time.monotonic()
        status = term.finish(timeout=15)
        took = time.monotonic() - started
        screen = term.text()
    assert status == 130, screen
    assert took < 10, f"exited {took:.1f} s after Ctrl-C"
    assert "interrupted;nothingwaspushed" in _squeeze(screen), screen

    async def count() -> int:
        async with conveyor.open(url) as backend:
            return len(await backend.list_all_tasks())

    assert asyncio.run(count()) == 0  # the two lines were in a chunk never pushed
