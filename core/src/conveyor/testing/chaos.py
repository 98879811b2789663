"""Worker processes to SIGKILL mid-task: the harness of a backend's chaos tests.

``Workers(url, folder, prefix=...)`` starts real ``conveyor.Worker`` processes
(``python -m conveyor.testing.chaos URL LOG CONFIG``) on a 1-second lease. Each
handler appends ``<n> <pid>`` to ``folder/starts.log`` when a task starts (O_APPEND,
so concurrent writers never interleave a line), then sleeps a little so a SIGKILL
often lands mid-task. ``kill_mid_task`` kills one while it holds tasks and returns
what it held; ``Workers.starts()`` counts the starts, for the test to check that
nothing was lost, nothing ran that was not pushed and every re-run was counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import conveyor
from conveyor import Backend, Status, TaskId

__all__ = ["Workers", "held_by", "kill_mid_task"]


class Workers:
    """The worker processes of one test over ``url`` (opened with ``config``), each with
    its own stderr file in ``folder``."""

    def __init__(self, url: str, folder: Path, **config: Any) -> None:
        self.url, self.folder, self.config = url, folder, json.dumps(config)
        self.log = folder / "starts.log"
        self.live: list[subprocess.Popen[bytes]] = []
        self.spawned = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start one more worker process."""
        self.spawned += 1
        command = [sys.executable, "-m", "conveyor.testing.chaos", self.url, str(self.log)]
        with (self.folder / f"worker-{self.spawned}.err").open("wb") as err:
            proc = subprocess.Popen([*command, self.config], stdout=subprocess.DEVNULL, stderr=err)
        self.live.append(proc)
        return proc

    def starts(self) -> Counter[int]:
        """How many times each task's payload started, across every process."""
        if not self.log.exists():
            return Counter()
        return Counter(int(line.split()[0]) for line in self.log.read_text().splitlines())

    def stop_all(self) -> None:
        """SIGTERM every live worker (a graceful stop), SIGKILL those that hang."""
        for proc in self.live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.live:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def held_by(backend: Backend, pid: int) -> list[TaskId]:
    """The ids the worker process ``pid`` holds (its name carries ``:<pid>:``)."""
    running = await backend.list_tasks(status=Status.RUNNING, page_size=1000)
    return [t.id for t in running if t.lock_by and f":{pid}:" in t.lock_by]


async def kill_mid_task(backend: Backend, workers: Workers) -> list[TaskId] | None:
    """SIGKILL a worker while it holds tasks; the ids it held (None if none got busy)."""
    for _ in range(400):
        for proc in random.sample(workers.live, len(workers.live)):
            if proc.poll() is not None:
                continue
            if await held_by(backend, proc.pid):
                proc.kill()
                proc.wait()
                workers.live.remove(proc)
                # A statement the worker had sent before it died still lands (a server
                # finishes it without its client): let such acks settle, then take what
                # it still holds as the victims.
                await asyncio.sleep(0.2)
                held = await held_by(backend, proc.pid)
                if held:
                    return held
                workers.spawn()
        await asyncio.sleep(0.02)
    return None


async def _work(url: str, log_path: str, config: dict[str, Any]) -> None:
    backend = conveyor.open(url, **{"lease_seconds": 1.0, "idle_wait": 0.2, **config})
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    async def handler(n: int) -> int:
        os.write(fd, f"{n} {pid}\n".encode())
        await asyncio.sleep(random.uniform(0.0, 0.03))
        return n

    worker = conveyor.Worker(backend, handler, concurrency=4, grace_period=2.0)
    print("ready", flush=True)
    try:
        await worker.run()
    finally:
        await backend.aclose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_work(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
