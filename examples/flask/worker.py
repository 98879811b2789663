"""The worker of the Flask example: sends the welcome mails the app enqueued.

python worker.py URL [--burst]
"""

from __future__ import annotations

import asyncio
import sys

import conveyor


def welcome_email(args: dict[str, str]) -> str:
    # A real app would talk to its mail server here.
    return f"welcome mail sent to {args['email']}"


async def main(url: str, burst: bool) -> None:
    async with conveyor.open(url, queue="mail") as backend:
        worker = conveyor.Worker(backend, welcome_email, concurrency=4)
        await worker.run(burst=burst)
        print(f"worker: {worker.succeeded} succeeded, {worker.failed} failed")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python worker.py URL [--burst]")
    asyncio.run(main(sys.argv[1], "--burst" in sys.argv[2:]))
