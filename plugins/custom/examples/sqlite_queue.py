"""``sqlite_queue(path)``: a conveyor backend over one plain SQLite table, made of functions."""

import sqlite3
from typing import Any

from conveyor_custom import abandon, claim, dump_task, extend, load_task, settle

from conveyor import Backend, Clock, Outcome, Task, TaskId, WorkerInfo, registry
from conveyor.rules.authoring import SYSTEM_CLOCK

SCHEMA = """CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, body TEXT,
    queue AS (json_extract(body, '$.queue')), status AS (json_extract(body, '$.status')),
    priority AS (json_extract(body, '$.priority')), run_at AS (json_extract(body, '$.run_at')))"""
SELECT = "SELECT body FROM tasks WHERE "
SAVE = "UPDATE tasks SET body = ? WHERE id = ? AND body = ?"
RUNNING = "status = 'Running'"
READY = "queue = ? AND status IN ('Pending','Failed') AND run_at <= ? ORDER BY -priority,run_at,id"


def sqlite_queue(path: str, queue: str = "default", clock: Clock = SYSTEM_CLOCK) -> Backend:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # autocommit
    db.execute(SCHEMA)

    def replace(old: Task[bytes], new: Task[bytes]) -> bool:  # unless it changed meanwhile
        return db.execute(SAVE, (dump_task(new), old.id, dump_task(old))).rowcount == 1

    def select(where: str, *args: object) -> list[Task[bytes]]:
        return [load_task(body) for (body,) in db.execute(SELECT + where, args)]

    def fetch_by_id(task_id: TaskId) -> Task[bytes] | None:
        return next(iter(select("id = ?", task_id)), None)

    def push(tasks: list[Task[bytes]]) -> list[TaskId]:
        with db:  # one transaction: all or none
            db.execute("BEGIN")
            db.executemany("INSERT INTO tasks VALUES (?, ?)", [(t.id, dump_task(t)) for t in tasks])
        return [t.id for t in tasks]

    def fetch(worker: WorkerInfo) -> Task[bytes] | None:
        for task in select(READY + " LIMIT 10", queue, clock.time()):
            if replace(task, claimed := claim(task, worker, clock=clock)):
                return claimed
        return None  # nothing ready, or every candidate was taken meanwhile

    def ack(task: Task[bytes], outcome: Outcome) -> None:
        stored = fetch_by_id(task.id)  # settle raises StaleLease unless this attempt holds it
        if not replace(stored or task, settle(stored, task, outcome)):
            ack(task, outcome)  # a heartbeat changed it meanwhile: settle again

    def heartbeat(worker: WorkerInfo) -> None:
        for task in [t for t in select(RUNNING) if t.lock_by == worker.name]:
            replace(task, extend(task, clock=clock))

    def resume_abandoned() -> int:
        return sum(replace(t, a) for t in select(RUNNING) if (a := abandon(t, clock=clock)))

    parts: dict[str, Any] = dict(fetch=fetch, push=push, ack=ack, fetch_by_id=fetch_by_id)
    parts.update(heartbeat=heartbeat, resume_abandoned=resume_abandoned, clock=clock)
    return registry.open("custom", **parts)  # clock: the facade stamps pushes by it too
