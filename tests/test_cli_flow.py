"""End to end on a real JSON store: push, inspect, work, inspect, maintain, all via the CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor.cli.output import stat_json

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor as run
from cli_support import one_line_error

pytestmark = pytest.mark.skipif(
    "json" not in conveyor.registry.names(),
    reason="the json backend (plugins/json) is not installed",
)

HANDLERS = """
def double(args):
    return {"doubled": args["n"] * 2}


def explode(args):
    raise ValueError(f"cannot handle {args!r}")
"""


class Cli:
    """``conveyor`` on one JSON store, from a project folder holding the handlers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"json://{folder / 'tasks.json'}"
        (folder / "jobs.py").write_text(HANDLERS)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = run("-b", self.url, *args, cwd=self.folder, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def metrics(self, queue: str | None = None) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            async with conveyor.open(self.url) as backend:
                return [stat_json(s) for s in await backend.metrics(queue)]

        return asyncio.run(read())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_push_show_work_show_list(cli: Cli) -> None:
    task_id = cli.ok("push", '{"n": 21}').strip()
    pending = cli.json("show", task_id)
    assert (pending["status"], pending["attempt"], pending["args"]) == ("Pending", 0, {"n": 21})
    table = cli.ok("show", task_id)
    assert "Pending" in table and '{"n":21}' in table

    cli.ok("worker", "jobs:double", "--burst", "--concurrency", "2")

    done = cli.json("show", task_id)
    assert (done["status"], done["attempt"], done["result"]) == ("Done", 1, {"doubled": 42})
    assert '{"doubled":42}' in cli.ok("show", task_id)

    listed = cli.json("tasks")
    assert [(t["id"], t["status"]) for t in listed] == [(task_id, "Done")]
    assert cli.json("tasks", "--status", "pending") == []
    assert [t["id"] for t in cli.json("tasks", "--queue", "default", "--status", "Done")] == [
        task_id
    ]
    assert task_id in cli.ok("tasks")

    # stats and queues show what the library reports for the same store
    assert cli.json("stats") == cli.metrics()
    queues = cli.json("queues")
    assert [q["name"] for q in queues] == ["default"]
    assert queues[0]["stats"] == cli.metrics("default")
    assert "default" in cli.ok("queues")
    cli.ok("stats")
    cli.ok("workers")


def test_failed_tasks_are_shown_resumed_and_vacuumed(cli: Cli) -> None:
    bad = cli.ok("push", '"x"', "--queue", "risky", "--max-attempts", "1").strip()
    good = cli.ok("push", '{"n": 1}').strip()
    cli.ok("worker", "jobs:explode", "--queue", "risky", "--burst")
    killed = cli.json("show", bad)
    assert killed["status"] == "Killed"
    assert "cannot handle 'x'" in killed["last_error"]
    assert cli.json("show", good)["status"] == "Pending"  # another queue: untouched

    assert cli.ok("resume", bad) == "1\n"
    assert cli.json("show", bad)["status"] == "Pending"
    again = run("-b", cli.url, "resume", good, cwd=cli.folder)
    assert again.returncode == 1
    assert "is Pending" in one_line_error(again)

    cli.ok("worker", "jobs:double", "--burst")
    assert cli.ok("vacuum") == "1\n"  # the done task; the resumed one waits in 'risky'
    assert [t["id"] for t in cli.json("tasks")] == [bad]
    assert cli.ok("resume", "--abandoned") == "0\n"


def test_bulk_push_of_10000_lines_lands_in_the_store(cli: Cli) -> None:
    source = cli.folder / "many.jsonl"
    source.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(10_000)))
    assert cli.ok("push", "--from", str(source), "--queue", "bulk") == "10000\n"
    page = cli.json("tasks", "--queue", "bulk", "--page", "10", "--page-size", "1000")
    assert [t["args"]["n"] for t in page] == list(range(9000, 10_000))


def test_a_bad_line_leaves_only_the_whole_chunks_before_it(cli: Cli) -> None:
    lines = [str(i) for i in range(2500)]
    lines[1999] = "{"  # line 2000: the end of the second chunk
    result = run("-b", cli.url, "push", "--from", "-", cwd=cli.folder, stdin="\n".join(lines))
    assert result.returncode == 1
    assert "stdin line 2000" in one_line_error(result)
    stored = cli.json("tasks", "--page-size", "1000", "--page", "2")
    assert len(stored) == 0
    assert len(cli.json("tasks", "--page-size", "1000")) == 1000
