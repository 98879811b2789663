"""A pusher process for the all-or-nothing test: ``python bulk_pusher.py URL PREFIX QUEUE N``.

Prints ``go`` just before one ``push_many`` of N tasks and ``done SECONDS`` after it; the
test SIGKILLs it somewhere in between.
"""

from __future__ import annotations

import asyncio
import sys
import time

import conveyor


async def main(url: str, prefix: str, queue: str, n: int) -> None:
    backend = conveyor.open(url, prefix=prefix, queue=queue)
    await backend.push("warm-up", queue=queue + "-warm")  # connected, script loaded
    items = [{"n": i, "pad": "x" * 200} for i in range(n)]
    print("go", flush=True)
    started = time.perf_counter()
    await backend.push_many(items)
    print(f"done {time.perf_counter() - started:.6f}", flush=True)
    await backend.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
