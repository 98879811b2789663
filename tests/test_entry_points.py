"""The installed distributions are found through importlib.metadata, as a user's would be."""

from __future__ import annotations

import importlib.metadata as metadata

import conveyor


def test_memory_is_discovered_without_importing_it() -> None:
    names = {ep.name for ep in metadata.entry_points(group="conveyor.backends")}
    assert "memory" in names
    info = {i.name: i for i in conveyor.available()}["memory"]
    assert info.distribution == "conveyor-memory"
    assert info.value == "conveyor_memory:MemoryBackend"


async def test_memory_opens_by_url_and_by_name() -> None:
    async with conveyor.open("memory://?queue=mail") as by_url:
        assert by_url.queue == "mail"
    async with conveyor.open("memory", queue="jobs") as by_name:
        assert by_name.queue == "jobs"
        task_id = await by_name.push({"to": "a@example.com"})
        task = await by_name.fetch_by_id(str(task_id))
        assert task is not None and task.args == {"to": "a@example.com"}
