"""Transactional enqueue: pushes that go into the application's own transaction.

    import psycopg
    from conveyor_postgres import enqueue_on

    async with await psycopg.AsyncConnection.connect(DSN) as conn:
        async with conn.transaction():
            await conn.execute("INSERT INTO orders ...")
            with enqueue_on(conn):
                await backend.push({"order": 42})   # stored by this transaction
        # committed: the order and its task together; an exception rolls back both

Inside ``with enqueue_on(conn)`` every push to a PostgreSQL backend (``push``,
``push_many``, ``push_stream``, ``push_weak``) runs on ``conn`` and does not commit:
the application's commit stores the tasks (and wakes idle workers, since the
notification is part of the same transaction); its rollback leaves no task.
``conn`` must be a psycopg 3 ``AsyncConnection`` to the same database.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

__all__ = ["enqueue_on", "current_connection"]

_CONNECTION: contextvars.ContextVar[tuple[Any, str | None] | None] = contextvars.ContextVar(
    "conveyor_postgres_connection", default=None
)


@contextmanager
def enqueue_on(
    conn: psycopg.AsyncConnection[Any], *, schema: str | None = None
) -> Iterator[psycopg.AsyncConnection[Any]]:
    """Route this context's pushes into ``conn``'s transaction (see the module's text).

    ``schema``: only backends on that schema use ``conn`` (default: all of them).
    """
    if not isinstance(conn, psycopg.AsyncConnection):
        raise TypeError(
            "enqueue_on takes a psycopg.AsyncConnection (the one your transaction runs on),"
            f" not {type(conn).__name__}"
        )
    token = _CONNECTION.set((conn, schema))
    try:
        yield conn
    finally:
        _CONNECTION.reset(token)


def current_connection(schema: str) -> Any:
    """The application connection pushes for ``schema`` go to now, or ``None``."""
    value = _CONNECTION.get()
    if value is None or (value[1] is not None and value[1] != schema):
        return None
    return value[0]
