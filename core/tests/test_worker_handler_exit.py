"""A handler that calls sys.exit() or raises KeyboardInterrupt fails only its own task."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import conveyor
from conveyor import Status, Worker


def exits_sync(args: dict[str, Any]) -> str:
    if args["bad"]:
        sys.exit(3)
    return "ok"


async def exits_async(args: dict[str, Any]) -> str:
    if args["bad"]:
        raise KeyboardInterrupt
    return "ok"


@pytest.mark.parametrize("handler", [exits_sync, exits_async])
async def test_the_worker_survives_and_the_task_is_killed(handler: Any) -> None:
    async with conveyor.open("memory://") as backend:
        bad = await backend.push({"bad": True}, max_attempts=1)
        good = [await backend.push({"bad": False}) for _ in range(3)]
        worker = Worker(backend, handler, concurrency=2, handle_signals=False)
        await worker.run(burst=True)
        killed = await backend.fetch_by_id(bad)
        assert killed is not None and killed.status is Status.KILLED
        assert killed.last_error is not None
        assert "SystemExit" in killed.last_error or "KeyboardInterrupt" in killed.last_error
        for task_id in good:
            done = await backend.fetch_by_id(task_id)
            assert done is not None and done.status is Status.DONE and done.result == "ok"
