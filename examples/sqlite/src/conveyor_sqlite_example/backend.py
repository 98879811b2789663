"""The backend: a plugin class whose ``@hookimpl`` methods are its capabilities.

Each hook is one short SQL transaction. ``BEGIN IMMEDIATE`` takes SQLite's write
lock first, so two processes claiming from one file never get the same task.
The calls block the event loop for the length of a local transaction, which is
acceptable for an example; a production backend would hand them to a thread.
"""

# ruff: noqa: S608 - the SQL pieces spliced in are this module's constants; values are bound

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult

import attrs

from conveyor import ConfigError, StaleLease, Status, Task, TaskId, TaskResult, WorkerInfo, hookimpl
from conveyor.clock import SYSTEM_CLOCK
from conveyor.lease import check_lease, new_token
from conveyor.outcome import Done, Kill, Outcome, Release, Retry

__all__ = ["SqliteBackend", "SqliteConfig"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- push order: FIFO within a priority
    id TEXT NOT NULL UNIQUE, queue TEXT NOT NULL, status TEXT NOT NULL,
    attempt INTEGER NOT NULL, max_attempts INTEGER NOT NULL, run_at INTEGER NOT NULL,
    priority INTEGER NOT NULL, args BLOB NOT NULL, result BLOB, last_error TEXT,
    lock_by TEXT, lease_token TEXT, lease_until INTEGER, meta TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ready ON tasks (queue, status, priority DESC, seq);
"""
FIELDS = "id, queue, status, attempt, max_attempts, run_at, priority, args, result,"
FIELDS += " last_error, lock_by, lease_token, lease_until, meta"
READY = "status IN ('Pending', 'Failed')"
FINAL = "status IN ('Done', 'Killed')"
UNLOCK = "lock_by = NULL, lease_token = NULL, lease_until = NULL"


def _micros(when: datetime | float) -> int:
    """Times are stored as whole microseconds, as exact as a datetime."""
    return round((when.timestamp() if isinstance(when, datetime) else when) * 1_000_000)


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, UTC)


def _task(row: sqlite3.Row) -> Task[bytes]:
    return Task(
        TaskId(row["id"]), row["args"], row["queue"], Status(row["status"]), row["attempt"],
        row["max_attempts"], _time(row["run_at"]) or datetime.now(UTC), row["priority"],
        row["result"], row["last_error"], row["lock_by"], row["lease_token"],
        _time(row["lease_until"]), json.loads(row["meta"]),
    )  # fmt: skip


def _clock(value: Any) -> Any:
    if not callable(getattr(value, "time", None)):
        raise TypeError(f"clock needs a time() method returning epoch seconds, not {value!r}")
    return value


@attrs.frozen
class SqliteConfig:
    """``path``: the database file; ``queue``: the default queue; ``lease_seconds``: how
    long a claim lasts without a heartbeat; ``idle_wait``: how long an empty poll
    waits before asking again; ``clock``: for tests (``conveyor.ManualClock``)."""

    path: str
    queue: str = "default"
    lease_seconds: float = 30.0
    idle_wait: float = 0.5
    clock: Any = attrs.field(default=SYSTEM_CLOCK, converter=_clock, kw_only=True)


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

    def _now(self) -> int:
        return _micros(self.config.clock.time())

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _claim(self, worker: WorkerInfo) -> Task[bytes] | None:
        with self._write() as db:
            row = db.execute(
                f"SELECT seq FROM tasks WHERE queue = ? AND {READY} AND run_at <= ?"
                " ORDER BY priority DESC, seq LIMIT 1",
                (self.config.queue, self._now()),
            ).fetchone()
            if row is None:
                return None
            until = self._now() + _micros(self.config.lease_seconds)
            claimed = db.execute(
                "UPDATE tasks SET status = 'Running', attempt = attempt + 1, lock_by = ?,"
                f" lease_token = ?, lease_until = ? WHERE seq = ? RETURNING {FIELDS}",
                (worker.name, new_token(), until, row["seq"]),
            ).fetchone()
        return _task(claimed)

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
        until = self._now() + _micros(self.config.lease_seconds)
        with self._write() as db:
            db.execute(
                "UPDATE tasks SET lease_until = ? WHERE lock_by = ? AND status = 'Running'",
                (until, worker.name),
            )

    @hookimpl
    async def close(self) -> None:
        self.db.close()  # sqlite3 allows closing twice

    # --- capabilities ------------------------------------------------------------

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        with self._write() as db:
            row = db.execute(f"SELECT {FIELDS} FROM tasks WHERE id = ?", (task.id,)).fetchone()
            if row is None:
                raise StaleLease(f"task {task.id} no longer exists; the ack was refused")
            stored = _task(row)
            check_lease(stored, task)
            run_at, attempt, result, error = row["run_at"], stored.attempt, None, None
            if isinstance(outcome, Done):
                status, result = Status.DONE, outcome.result
            elif isinstance(outcome, Retry):
                error, run_at = outcome.error, _micros(outcome.run_at)
                status = Status.KILLED if attempt >= stored.max_attempts else Status.FAILED
            elif isinstance(outcome, Kill):
                status, error = Status.KILLED, outcome.error
            else:
                assert isinstance(outcome, Release)
                status, attempt = Status.PENDING, attempt - 1
            db.execute(
                f"UPDATE tasks SET status = ?, attempt = ?, run_at = ?, result = ?,"
                f" last_error = COALESCE(?, last_error), {UNLOCK} WHERE id = ?",
                (status.value, attempt, run_at, result, error, task.id),
            )

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        rows = [
            (t.id, t.queue, t.status.value, t.attempt, t.max_attempts, _micros(t.run_at),
             t.priority, t.args, json.dumps(dict(t.meta)))
            for t in tasks
        ]  # fmt: skip
        with self._write() as db:  # one transaction: all or none
            db.executemany(
                "INSERT INTO tasks (id, queue, status, attempt, max_attempts, run_at, priority,"
                " args, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return [t.id for t in tasks]

    @hookimpl
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        row = self.db.execute(f"SELECT {FIELDS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    @hookimpl
    async def vacuum(self) -> int:
        with self._write() as db:
            return db.execute(f"DELETE FROM tasks WHERE {FINAL}").rowcount

    @hookimpl
    async def resume_by_id(self, task_id: TaskId) -> bool:
        with self._write() as db:
            return bool(
                db.execute(
                    "UPDATE tasks SET attempt = CASE status WHEN 'Killed' THEN 0 ELSE attempt END,"
                    f" status = 'Pending', run_at = ?, {UNLOCK}"
                    " WHERE id = ? AND status IN ('Failed', 'Killed', 'Running')",
                    (self._now(), task_id),
                ).rowcount
            )

    @hookimpl
    async def resume_abandoned(self) -> int:
        expired = "status = 'Running' AND lease_until <= ?"
        now = self._now()
        with self._write() as db:
            killed = db.execute(
                f"UPDATE tasks SET status = 'Killed', last_error = 'worker ' || lock_by ||"
                f" ' stopped renewing its lease', {UNLOCK}"
                f" WHERE {expired} AND attempt >= max_attempts",
                (now,),
            ).rowcount
            resumed = db.execute(
                f"UPDATE tasks SET status = 'Pending', {UNLOCK} WHERE {expired}", (now,)
            ).rowcount
        return killed + resumed

    @hookimpl
    async def check_status(self, task_ids: Sequence[TaskId]) -> Sequence[TaskResult[bytes]]:
        marks = ", ".join("?" * len(task_ids))
        rows = self.db.execute(
            f"SELECT id, status, result, last_error FROM tasks WHERE {FINAL} AND id IN ({marks})",
            list(task_ids),
        ).fetchall()
        return [TaskResult(TaskId(r[0]), Status(r[1]), r[2], r[3]) for r in rows]

    @hookimpl
    def get_queue(self) -> str:
        return self.config.queue
