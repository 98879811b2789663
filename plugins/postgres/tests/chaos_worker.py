"""A worker process for the chaos and fault tests: ``python chaos_worker.py URL SCHEMA LOG``.

Runs ``conveyor.Worker`` over the PostgreSQL backend; its handler appends one line
``<n> <pid>`` to LOG (O_APPEND, so concurrent writers never interleave a line)
when a task starts, then sleeps a little so a SIGKILL often lands mid-task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys

import conveyor


async def main(url: str, schema: str, log_path: str) -> None:
    backend = conveyor.open(url, schema=schema, lease_seconds=1.0, idle_wait=0.2)
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
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
