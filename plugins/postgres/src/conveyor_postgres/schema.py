"""The backend's tables, versioned: applied at first use under an advisory lock, or by
``conveyor migrate``. The README documents every table and index and why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from conveyor import ConveyorError

__all__ = ["VERSION", "MIGRATIONS", "SchemaOutdated", "plan", "current_version", "apply"]


class SchemaOutdated(ConveyorError):
    """The schema is missing or older than this version needs, and migrating was turned off."""


# Each entry takes the schema from version i to i + 1. "{s}" is the schema's quoted
# name: schema names are checked to be [a-z_][a-z0-9_]* (see config.check_schema),
# so the quoting is exact and nothing a user typed is spliced in unchecked.
MIGRATIONS: Sequence[str] = (
    """\
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.schema_version (
    version integer NOT NULL
);
CREATE TABLE {s}.tasks (
    id           text COLLATE "C" PRIMARY KEY,          -- conveyor TaskId: sorts by creation time
    queue        text COLLATE "C" NOT NULL,
    status       text NOT NULL CHECK (status IN
                   ('Pending', 'Queued', 'Running', 'Done', 'Failed', 'Killed')),
    attempt      integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    run_at       timestamptz NOT NULL,
    priority     bigint NOT NULL DEFAULT 0,
    args         bytea NOT NULL,             -- the codec's bytes
    result       bytea,
    last_error   text,
    lock_by      text,                       -- the worker holding it
    lease_token  text,                       -- the fence: every write about an attempt carries it
    lease_until  timestamptz,
    last_token   text,                       -- token of the attempt settled last (resent acks)
    meta         bytea,                      -- JSON bytes, NULL for none
    name         text
) WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
-- The claim: the waiting tasks of one queue in delivery order. Partial, so its size
-- is the number of waiting tasks, whatever the number of finished ones.
CREATE INDEX tasks_ready ON {s}.tasks (queue, priority DESC, run_at, id)
    WHERE status IN ('Pending', 'Failed');
-- Heartbeats (by worker) and resume_abandoned (by deadline): held tasks only.
CREATE INDEX tasks_held ON {s}.tasks (lease_until) WHERE status IN ('Running', 'Queued');
CREATE INDEX tasks_holder ON {s}.tasks (lock_by) WHERE status IN ('Running', 'Queued');
-- Listings by status (oldest first), counts, and vacuum's finished tasks.
CREATE INDEX tasks_status ON {s}.tasks (status, queue, id);
CREATE TABLE {s}.workers (
    name        text PRIMARY KEY,
    queue       text NOT NULL,
    concurrency integer NOT NULL,
    started_at  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    layers      text NOT NULL DEFAULT ''
);
""",
)

VERSION = len(MIGRATIONS)
"""The schema version this code needs."""


def _quoted(schema: str) -> str:
    return f'"{schema}"'


def lock_key(schema: str) -> str:
    """The advisory lock (``hashtext`` of this text) that serialises migrations of ``schema``."""
    return f"conveyor-postgres schema {schema}"


def plan(schema: str, version: int) -> str:
    """The SQL that takes ``schema`` from ``version`` to ``VERSION`` ('' when up to date)."""
    steps = [
        MIGRATIONS[v].format(s=_quoted(schema))
        + f"DELETE FROM {_quoted(schema)}.schema_version;\n"
        + f"INSERT INTO {_quoted(schema)}.schema_version VALUES ({v + 1});\n"
        for v in range(version, VERSION)
    ]
    return "".join(steps)


async def current_version(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    """The schema's version: 0 when it has no tables yet."""
    cur = await conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{_quoted(schema)}.schema_version",)
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute(f"SELECT max(version) FROM {_quoted(schema)}.schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def apply(conn: psycopg.AsyncConnection[Any], schema: str) -> str:
    """Bring ``schema`` to ``VERSION`` in one transaction under the advisory lock.

    Idempotent and safe from many processes at once: the lock makes the others
    wait, and they then find the schema current. Returns the SQL that was run.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key(schema),))
        version = await current_version(conn, schema)
        if version > VERSION:
            raise ConveyorError(
                f"schema {schema!r} is at version {version}, newer than this conveyor-postgres"
                f" knows ({VERSION}); upgrade conveyor-postgres"
            )
        text = plan(schema, version)
        if text:
            await conn.execute(text.encode())
    return text
