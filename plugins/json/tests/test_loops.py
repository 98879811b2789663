"""A backend used from several event loops (threads, one asyncio.run after another)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from conveyor_json import BackendInUse

import conveyor
from conveyor import Filter, WorkerInfo


def test_one_asyncio_run_after_another_from_other_threads_works(tmp_path: Path) -> None:
    backend = conveyor.open(f"json://{tmp_path}/tasks.json")
    ids: list[str] = []

    def push() -> None:
        ids.append(asyncio.run(backend.push({"n": len(ids)})))

    for _ in range(3):
        thread = threading.Thread(target=push)
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive()

    async def check() -> list[str]:
        async with backend:
            return [t.id for t in await backend.hooks.list_all_tasks(Filter())]

    assert sorted(asyncio.run(check())) == sorted(ids) and len(ids) == 3


def test_a_second_running_loop_is_refused_at_once(tmp_path: Path) -> None:
    backend = conveyor.open(f"json://{tmp_path}/tasks.json?idle_wait=3600")
    waiting = threading.Event()
    release = threading.Event()

    async def hold() -> None:
        stream = backend.hooks.poll(WorkerInfo("w", "default"))
        assert await anext(stream) is None
        waiting.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        await stream.aclose()

    owner = threading.Thread(target=asyncio.run, args=(hold(),))
    owner.start()
    try:
        assert waiting.wait(timeout=60)
        with pytest.raises(BackendInUse, match="one event loop at a time"):
            asyncio.run(backend.push({"n": 1}))
    finally:
        release.set()
        owner.join(timeout=60)
    assert not owner.is_alive()
    asyncio.run(backend.aclose())


def test_threads_racing_with_asyncio_run_never_hang(tmp_path: Path) -> None:
    backend = conveyor.open(f"json://{tmp_path}/tasks.json")
    pushed: list[str] = []
    refused: list[BaseException] = []

    def pusher(k: int) -> None:
        for i in range(25):
            try:
                pushed.append(asyncio.run(backend.push({"k": k, "i": i})))
            except BackendInUse as exc:
                refused.append(exc)

    threads = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert len(pushed) + len(refused) == 100

    async def stored() -> set[str]:
        async with backend:
            return {t.id for t in await backend.hooks.list_all_tasks(Filter(page_size=1000))}

    assert asyncio.run(stored()) == set(pushed)
