"""The backend: a plugin class whose ``@hookimpl`` methods are its capabilities.

Every hook that changes a task is the same three steps in one SQL transaction:
read the stored row, apply the contract's rule from ``conveyor.rules`` (a pure
function over the record), write the row back. ``BEGIN IMMEDIATE`` takes
SQLite's write lock first, so two processes claiming from one file never get
the same task. The calls block the event loop for the length of a local
transaction, which is acceptable for an example; a production backend would
hand them to a thread.
"""

# ruff: noqa: S608 - the SQL pieces spliced in are this module's constants; values are bound

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult

import attrs

from conveyor import (
    ConfigError,
    Outcome,
    Status,
    Task,
    TaskId,
    TaskResult,
    WorkerInfo,
    hookimpl,
    rules,
)
from conveyor.rules.authoring import at

__all__ = ["SqliteBackend", "SqliteConfig"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, args BLOB NOT NULL, queue TEXT NOT NULL, status TEXT NOT NULL,
    attempt INTEGER NOT NULL, max_attempts INTEGER NOT NULL, run_at INTEGER NOT NULL,
    priority INTEGER NOT NULL, result BLOB, last_error TEXT, lock_by TEXT, lease_token TEXT,
    lease_until INTEGER, meta TEXT NOT NULL, name TEXT);
CREATE INDEX IF NOT EXISTS ready ON tasks (queue, status, priority DESC, run_at, id);
"""
FIELDS = "id, args, queue, status, attempt, max_attempts, run_at, priority, result,"
FIELDS += " last_error, lock_by, lease_token, lease_until, meta, name"  # Task's field order
SAVE = f"INSERT OR REPLACE INTO tasks ({FIELDS}) VALUES ({', '.join('?' * 15)})"
# conveyor.rules.is_ready and order_key, as SQL: what a claim takes first
READY = "queue = ? AND status IN ('Pending', 'Failed') AND run_at <= ?"
ORDER = "ORDER BY priority DESC, run_at, id"


def _micros(when: datetime | None) -> int | None:
    """Times are stored as whole microseconds, as exact as a datetime."""
    return None if when is None else round(when.timestamp() * 1_000_000)


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, UTC)


def _task(row: sqlite3.Row) -> Task[bytes]:
    values = list(row)
    values[0], values[3] = TaskId.parse(values[0]), Status(values[3])
    values[6], values[12] = _time(values[6]), _time(values[12])
    values[13] = json.loads(values[13])
    return Task(*values)


def _row(t: Task[bytes]) -> tuple[Any, ...]:
    return (
        t.id, t.args, t.queue, t.status.value, t.attempt, t.max_attempts, _micros(t.run_at),
        t.priority, t.result, t.last_error, t.lock_by, t.lease_token, _micros(t.lease_until),
        json.dumps(dict(t.meta)), t.name,
    )  # fmt: skip


@attrs.frozen(kw_only=True)
class SqliteConfig(rules.BackendConfig):
    """``path``: the database file; ``idle_wait``: how long an empty poll waits before
    asking again; and ``queue``, ``lease_seconds``, ``clock`` from ``BackendConfig``."""

    path: str
    idle_wait: float = attrs.field(default=0.5, validator=rules.seconds(0.0, low_open=False))


class SqliteBackend:
    """Opened as ``conveyor.open("sqlite:///var/lib/app/tasks.db?queue=mail")``."""

    Config = SqliteConfig

    @staticmethod
    def config_from_url(parts: SplitResult) -> Mapping[str, Any]:
        """``sqlite:///abs/path.db`` or ``sqlite://relative.db``: host and path make the file."""
        path = parts.netloc + parts.path
        if not path:
            raise ConfigError("a sqlite URL names its file: sqlite:///var/lib/app/tasks.db")
        return {"path": path}

    def __init__(self, config: SqliteConfig) -> None:
        self.config = config
        try:
            self.db = sqlite3.connect(config.path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot use {config.path!r} as a SQLite task store: {exc}") from None

    def _now(self) -> datetime:
        return at(self.config.clock.time())

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _select(self, where: str, *values: Any) -> list[Task[bytes]]:
        rows = self.db.execute(f"SELECT {FIELDS} FROM tasks WHERE {where}", values)
        return [_task(row) for row in rows]

    def _apply(self, task_id: TaskId, rule: Callable[[Task[bytes] | None], Any]) -> Any:
        """Read task ``task_id`` (or ``None``), apply ``rule``, write back what it returns."""
        with self._write() as db:
            new = rule(next(iter(self._select("id = ?", task_id)), None))
            if isinstance(new, Task):
                db.execute(SAVE, _row(new))
            return new

    def _claim(self, worker: WorkerInfo) -> Task[bytes] | None:
        lease, now = self.config.lease_seconds, self._now()
        with self._write() as db:
            ready = self._select(f"{READY} {ORDER} LIMIT 1", self.config.queue, _micros(now))
            if not ready:
                return None
            claimed = rules.claim(ready[0], worker.name, now=now, lease_seconds=lease)
            db.execute(SAVE, _row(claimed))
        return claimed

    # --- the required Backend trait ------------------------------------------------

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        idle = False
        while True:  # one claim per request: never ahead of the worker's demand
            task = self._claim(worker)
            if task is None and idle:
                await asyncio.sleep(self.config.idle_wait)  # don't let the worker spin
                task = self._claim(worker)
            idle = task is None
            yield task

    @hookimpl
    async def heartbeat(self, worker: WorkerInfo) -> None:
        lease, now = self.config.lease_seconds, self._now()
        with self._write() as db:
            for task in self._select("lock_by = ? AND status = 'Running'", worker.name):
                db.execute(
                    SAVE, _row(rules.extend(task, worker.name, now=now, lease_seconds=lease))
                )

    @hookimpl
    async def close(self) -> None:
        self.db.close()  # sqlite3 allows closing twice

    # --- capabilities: each one rule of conveyor.rules -------------------------------

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        self._apply(task.id, lambda stored: rules.settle(stored, task, outcome))

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        with self._write() as db:  # one transaction: all or none
            db.executemany(SAVE.replace("OR REPLACE ", ""), [_row(t) for t in tasks])
        return [t.id for t in tasks]

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        return next(iter(self._select("id = ?", task_id)), None)

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        now = self._now()
        resumed = self._apply(task_id, lambda stored: stored and rules.resume(stored, now))
        return resumed is not None

    @hookimpl
    async def resume_abandoned(self) -> int:
        now = self._now()
        with self._write() as db:
            held = self._select(
                "status IN ('Running', 'Queued') AND lease_until <= ?", _micros(now)
            )
            back = [t for t in (rules.abandon(task, now) for task in held) if t is not None]
            db.executemany(SAVE, [_row(t) for t in back])
        return len(back)

    @hookimpl
    async def vacuum(self) -> int:
        with self._write() as db:  # rules.vacuumable: Done and Killed
            return db.execute("DELETE FROM tasks WHERE status IN ('Done', 'Killed')").rowcount

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        tasks = self._select(f"id IN ({', '.join('?' * len(task_ids))})", *task_ids)
        killed = Status.KILLED
        return [
            TaskResult(t.id, t.status, t.result, t.last_error if t.status is killed else None)
            for t in tasks
            if t.status.is_final
        ]

    @hookimpl
    def get_queue(self) -> str:
        return self.config.queue
