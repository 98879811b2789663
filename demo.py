"""conveyor in one screen: push 10,000 tasks into the memory backend, drain them with a Worker.

Run with ``make demo`` (or ``.venv/bin/python demo.py``).
"""

from __future__ import annotations

import asyncio
import time

import attrs

import conveyor
from conveyor import RetryAfter, TaskContext, Worker

COUNT = 10_000


@attrs.frozen
class Order:
    """The payload: handlers annotated with an attrs class receive one."""

    number: int
    amount_cents: int


async def charge(order: Order, ctx: TaskContext) -> int:
    """A handler: every 1,000th order is declined once, then goes through on its retry."""
    if order.number % 1_000 == 0 and ctx.attempt == 1:
        raise RetryAfter(0, "card declined, trying again")
    return order.amount_cents


async def main() -> None:
    async with conveyor.open("memory://") as backend:
        print(f"conveyor demo: {COUNT:,} orders through the {backend.name!r} backend")
        start = time.perf_counter()
        ids = await backend.push_many(Order(n, 100 + n % 900) for n in range(1, COUNT + 1))
        pushed = time.perf_counter() - start

        worker = Worker(backend, charge, name="demo")
        start = time.perf_counter()
        await worker.run(burst=True)  # returns once nothing is ready and nothing runs
        drained = time.perf_counter() - start

        results = await backend.check_status(ids)
        done = sum(r.ok for r in results)
        total = sum(r.result for r in results if r.ok)
        print(f"pushed  {COUNT:,} orders in {pushed * 1e3:,.0f} ms ({COUNT / pushed:,.0f} tasks/s)")
        print(
            f"drained {done:,} orders in {drained * 1e3:,.0f} ms ({COUNT / drained:,.0f} tasks/s)"
        )
        print(f"retried {worker.failed} declined cards; charged ${total / 100:,.2f} in all")


if __name__ == "__main__":
    asyncio.run(main())
