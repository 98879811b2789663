"""What the listings show: task names, workers that are gone, every record of a store
holding a bad one, and rates that never round to 100 (issues 14.7, 14.8, 15.7)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import ManualClock, WorkerInfo

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor as run
from cli_support import one_line_error
from cli_support.fake_plugins import make_network_site

pytestmark = pytest.mark.skipif(
    "json" not in conveyor.registry.names(),
    reason="the json backend (plugins/json) is not installed",
)


class Store:
    """One JSON store, used through the CLI in a subprocess and the library here."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"json://{folder / 'tasks.json'}"

    def ok(self, *args: str) -> str:
        result = run("-b", self.url, *args, cwd=self.folder)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def call(self, work: Any, **config: Any) -> Any:
        async def go() -> Any:
            async with conveyor.open(self.url, **config) as backend:
                return await work(backend)

        return asyncio.run(go())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def _stores_names(store: Store) -> bool:
    async def probe(backend: conveyor.Backend) -> bool:
        task = await backend.fetch_by_id(await backend.push(0, name="probe", queue="probe"))
        await backend.vacuum()
        return task is not None and task.name == "probe"

    return bool(store.call(probe))


def test_push_name_is_shown_by_tasks_and_show_and_filtered_by_tasks_name(store: Store) -> None:
    if not _stores_names(store):
        pytest.skip("the json backend does not store Task.name yet")
    sent = store.ok("push", '{"to": "a@example.com"}', "--name", "emails.send").strip()
    other = store.ok("push", '{"w": 640}', "--name", "images.resize").strip()
    plain = store.ok("push", "1").strip()

    assert store.json("show", sent)["name"] == "emails.send"
    assert "emails.send" in store.ok("show", sent)
    listed = {t["id"]: t["name"] for t in store.json("tasks", "--queue", "default")}
    assert listed == {sent: "emails.send", other: "images.resize", plain: None}
    assert [t["id"] for t in store.json("tasks", "--name", "images.resize")] == [other]
    table = store.ok("tasks", "--queue", "default")
    assert "name" in table.splitlines()[0] and "emails.send" in table
    assert "No tasks named 'nothing.such' on page 1." in store.ok("tasks", "--name", "nothing.such")


def _register(store: Store, name: str, seconds_ago: float) -> None:
    async def register(backend: conveyor.Backend) -> None:
        await backend.register_worker(WorkerInfo(name, "default"))

    store.call(register, clock=ManualClock(time.time() - seconds_ago))


def test_workers_past_their_heartbeat_deadline_are_gone_and_not_counted(store: Store) -> None:
    store.ok("push", "1")
    _register(store, "alive", seconds_ago=1)
    _register(store, "exited-burst-worker", seconds_ago=31)  # the lease is 30 s
    state = {w["id"]: w["alive"] for w in store.json("workers")}
    assert state == {"alive": True, "exited-burst-worker": False}
    rows = {line.split()[0]: line.split() for line in store.ok("workers").splitlines()[1:]}
    assert "alive" in rows["alive"] and "gone" in rows["exited-burst-worker"]
    (queue,) = store.json("queues")
    assert queue["workers"] == ["alive"]
    table = store.ok("queues").splitlines()
    assert table[-1].split()[0] == "default" and table[-1].split()[-1] == "1"


def test_the_gone_deadline_is_the_backends_own_lease(store: Store) -> None:
    _register(store, "slow", seconds_ago=8)
    assert store.json("workers")[0]["alive"] is True  # within the default 30 s lease
    result = run("-b", store.url + "?lease_seconds=5", "workers", "--json", cwd=store.folder)
    assert json.loads(result.stdout)[0]["alive"] is False


class Lenient:
    """A codec that writes whatever JSON's ASCII escapes allow, lone surrogates included:
    how an old conveyor or another producer could have written a store."""

    name = "lenient"

    def encode(self, value: Any) -> bytes:
        return json.dumps(value).encode("ascii")

    def decode(self, compact: bytes, as_type: Any = Any) -> Any:
        return json.loads(compact)


def test_one_bad_record_never_breaks_a_listing(store: Store) -> None:
    good = store.ok("push", '{"n": 1}').strip()

    async def plant(backend: conveyor.Backend) -> str:
        foreign = conveyor.Backend(backend.plugin, name=backend.name, codec=Lenient())
        return str(await foreign.push("\ud800", meta={"note": "\udc00"}))

    bad = store.call(plant)
    after = store.ok("push", '{"n": 2}').strip()

    table = store.ok("tasks")
    for task_id in (good, bad, after):
        assert task_id in table
    assert "unreadable" in table and "\\ud800" in table  # the bad payload, readable

    listed = store.json("tasks")
    assert [t["id"] for t in listed] == [good, bad, after]
    assert listed[0]["args"] == {"n": 1} and listed[2]["args"] == {"n": 2}
    assert "base64" in listed[1]["args"]

    shown = store.ok("show", bad)
    assert bad in shown and "\\ud800" in shown and "\\udc00" in shown
    assert store.json("show", bad)["meta"] == {"note": "\udc00"}  # escaped JSON, read back


def test_a_lone_surrogate_is_refused_at_push_and_nothing_is_stored(store: Store) -> None:
    result = run("-b", store.url, "push", '"\\udfff"', cwd=store.folder)
    assert result.returncode == 1
    assert "lone surrogate (\\udfff)" in one_line_error(result)

    async def push_meta(backend: conveyor.Backend) -> None:
        await backend.push(1, meta={"k": "\ud800"})

    with pytest.raises(conveyor.PayloadError, match="lone surrogate"):
        store.call(push_meta)
    assert store.json("tasks") == []


@pytest.mark.parametrize(
    ("rate", "shown"),
    [("99.99", "99.99 %"), ("99.999", "99.99 %"), ("99.95", "99.95 %"), ("100.0", "100.0 %"),
     ("0.001", "0.001 %"), ("50", "50.0 %")],
)  # fmt: skip
def test_a_rate_below_100_never_shows_as_100(tmp_path: Path, rate: str, shown: str) -> None:
    site = make_network_site(tmp_path)
    result = run(
        "-b", f"fakenet://?rate={rate}", "stats", cwd=tmp_path, env={"PYTHONPATH": str(site)}
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("Success rate"))
    assert line.split(None, 2)[-1] == shown
