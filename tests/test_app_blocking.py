"""``send_email.push_sync(...)``: named tasks pushed from code with no event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import attrs
import pytest

import conveyor
from conveyor import App, PayloadError, Status


@attrs.frozen
class Email:
    to: str


def test_push_sync_from_threads_stores_named_tasks_a_worker_then_runs(tmp_path: Path) -> None:
    url = f"json://{tmp_path}/tasks.json"
    app = App(url)

    @app.task(name="mail.send", queue="mail", priority=3)
    async def send(email: Email) -> str:
        return "sent to " + email.to

    ids: list[conveyor.TaskId] = []

    def pusher(n: int) -> None:
        for k in range(5):
            ids.append(send.push_sync(Email(f"u{n}.{k}@example.com")))

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pytest.raises(PayloadError, match=r"task mail\.send: payload does not fit Email"):
        send.push_sync({"subject": "no recipient"})
    assert len(set(ids)) == 20

    async def work() -> dict[conveyor.TaskId, conveyor.Task[object]]:
        async with conveyor.open(url) as backend:
            await app.worker(backend, handle_signals=False).run(burst=True)
            return {t.id: t for t in await backend.list_tasks("mail", page_size=100)}

    tasks = asyncio.run(work())
    assert set(tasks) == set(ids)
    assert all(t.status is Status.DONE and t.name == "mail.send" for t in tasks.values())
    assert all(t.priority == 3 for t in tasks.values())
    app.blocking.close()


async def test_push_sync_on_an_app_given_an_opened_backend_says_what_to_do() -> None:
    async with conveyor.open("memory://") as backend:
        app = App(backend)

        @app.task
        def job(n: int) -> None:
            return None

        with pytest.raises(RuntimeError, match="push_sync needs the app's backend as a URL"):
            job.push_sync(1)
