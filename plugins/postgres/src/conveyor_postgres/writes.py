"""Storing new tasks: one INSERT for a few, COPY for many, a notification per queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor import Task
from conveyor_postgres.records import meta_bytes
from conveyor_postgres.sql import Statements

__all__ = ["insert_tasks", "insert_quiet", "copy_tasks"]

_COPY_TYPES = ["text", "text", "text", "int4", "int4", "timestamptz", "int8", "bytea", "bytea",
               "text"]  # fmt: skip


async def insert_quiet(conn: Any, sql: Statements, t: Task[bytes]) -> None:
    """One task by a plain INSERT, notifying no one (the caller owes a notification)."""
    await conn.execute(
        sql.insert_quiet,
        (t.id, t.queue, t.max_attempts, t.run_at, t.priority, t.args, meta_bytes(t.meta),
         t.name),
    )  # fmt: skip


async def insert_tasks(conn: Any, sql: Statements, tasks: Sequence[Task[bytes]]) -> None:
    """``tasks`` in one statement (which notifies each queue once)."""
    if len(tasks) == 1:
        t = tasks[0]
        await conn.execute(
            sql.insert,
            (t.id, t.queue, t.max_attempts, t.run_at, t.priority, t.args, meta_bytes(t.meta),
             t.name),
        )  # fmt: skip
        return
    await conn.execute(
        sql.insert_many,
        (
            [t.id for t in tasks], [t.queue for t in tasks], [t.max_attempts for t in tasks],
            [t.run_at for t in tasks], [t.priority for t in tasks], [t.args for t in tasks],
            [meta_bytes(t.meta) for t in tasks], [t.name for t in tasks],
        ),
    )  # fmt: skip


async def copy_tasks(conn: Any, sql: Statements, tasks: Sequence[Task[bytes]]) -> None:
    """``tasks`` by binary COPY in one transaction, then one notification per queue.

    All or none: the transaction commits every row or none. A task id already
    stored fails the whole COPY (the caller checks the first id before resending).
    """
    async with conn.transaction():
        cur = conn.cursor()
        async with cur.copy(sql.copy) as copy:
            copy.set_types(_COPY_TYPES)
            write = copy.write_row
            for t in tasks:
                meta = meta_bytes(t.meta) if t.meta else None
                row = (t.id, t.queue, "Pending", 0, t.max_attempts, t.run_at, t.priority, t.args,
                       meta, t.name)  # fmt: skip
                await write(row)
        for queue in {t.queue for t in tasks}:
            await conn.execute(sql.notify, (sql.push_channel, queue))
