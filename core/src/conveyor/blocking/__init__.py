"""conveyor for synchronous code: ``BlockingBackend``, the facade with plain methods.

    from conveyor.blocking import BlockingBackend

    tasks = BlockingBackend("redis://localhost:6379/0")
    task_id = tasks.push({"to": "ada@example.com"})
    print(tasks.wait_one(task_id, timeout=30).status)

Safe from many threads at once, across ``fork`` and at interpreter exit; see
docs/sync.md for the rules.
"""

from __future__ import annotations

from conveyor.blocking.backend import BlockingBackend, Opener, open  # noqa: A004

__all__ = ["BlockingBackend", "Opener", "open"]
