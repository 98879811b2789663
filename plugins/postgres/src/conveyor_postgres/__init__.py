"""conveyor-postgres: a conveyor backend in a PostgreSQL schema.

``conveyor.open("postgresql://user@host:5432/db?queue=mail&schema=conveyor")``;
``enqueue_on(conn)`` pushes inside the application's own transaction.
"""

from __future__ import annotations

from conveyor_postgres.backend import PostgresBackend
from conveyor_postgres.config import PostgresConfig
from conveyor_postgres.schema import VERSION, SchemaOutdated
from conveyor_postgres.transaction import enqueue_on

__all__ = ["VERSION", "PostgresBackend", "PostgresConfig", "SchemaOutdated", "enqueue_on"]
