"""The read-only commands: ``tasks``, ``show``, ``queues``, ``workers``, ``stats``."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from conveyor.capability import Capability
from conveyor.cli.errors import CliError
from conveyor.cli.output import (
    compact,
    emit_json,
    new_table,
    queue_json,
    relative,
    sort_stats,
    stat_json,
    stat_title,
    stat_value,
    stdout,
    task_json,
    when,
    worker_json,
)
from conveyor.cli.parser import backend_option, json_option
from conveyor.cli.payload import whole_arg
from conveyor.cli.session import opened
from conveyor.expose import MAX_PAGE_SIZE, Filter, Statistic
from conveyor.task import Task
from conveyor.task_id import TaskId

__all__ = ["configure", "task_id_arg"]


def task_id_arg(text: str) -> TaskId:
    """A task id as printed by ``push`` (26 characters of 0-9 and a-v)."""
    try:
        return TaskId.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(commands: Any) -> None:
    """Add the listing commands."""
    tasks = commands.add_parser("tasks", help="list tasks, a page at a time")
    backend_option(tasks)
    json_option(tasks)
    tasks.add_argument("--queue", "-q", help="only this queue (default: every queue)")
    tasks.add_argument("--status", "-s", help="Pending, Queued, Running, Done, Failed or Killed")
    tasks.add_argument(
        "--page", type=whole_arg, default=1, metavar="N", help="1 is the oldest page"
    )
    tasks.add_argument(
        "--page-size",
        type=whole_arg,
        default=20,
        metavar="N",
        help=f"1 to {MAX_PAGE_SIZE} (default: 20)",
    )
    tasks.set_defaults(command=lambda args: asyncio.run(_tasks(args)))

    show = commands.add_parser("show", help="one task: status, attempts, result or error, lease")
    backend_option(show)
    json_option(show)
    show.add_argument("task_id", type=task_id_arg, metavar="TASK_ID")
    show.set_defaults(command=lambda args: asyncio.run(_show(args)))

    queues = commands.add_parser("queues", help="queues with their statistics")
    backend_option(queues)
    json_option(queues)
    queues.set_defaults(command=lambda args: asyncio.run(_queues(args)))

    workers = commands.add_parser("workers", help="registered workers")
    backend_option(workers)
    json_option(workers)
    workers.add_argument("--queue", "-q", help="only this queue's workers")
    workers.set_defaults(command=lambda args: asyncio.run(_workers(args)))

    stats = commands.add_parser("stats", help="the backend's statistics")
    backend_option(stats)
    json_option(stats)
    stats.add_argument("--queue", "-q", help="one queue's statistics (default: the whole store)")
    stats.set_defaults(command=lambda args: asyncio.run(_stats(args)))


def _filter(args: argparse.Namespace) -> Filter:
    try:
        return Filter(status=args.status, page=args.page, page_size=args.page_size)
    except ValueError as exc:
        raise CliError(str(exc)) from None


async def _tasks(args: argparse.Namespace) -> int:
    page = _filter(args)
    async with opened(args.backend) as backend:
        if args.queue:
            found = await backend.list_tasks(args.queue, page)
        elif backend.supports(Capability.LIST_ALL_TASKS) or not backend.supports(
            Capability.LIST_TASKS
        ):
            found = await backend.list_all_tasks(page)
        else:
            # Without a cross-queue listing, the backend's own queue is the useful default.
            found = await backend.list_tasks(backend.queue, page)
    if args.json:
        emit_json([task_json(t) for t in found])
        return 0
    console = stdout()
    if not found:
        what = f" {page.status.value}" if page.status else ""
        console.print(f"No{what} tasks on page {page.page}.")
        return 0
    table = new_table("id", "queue", "status", "tries", "pri", "runs", "args", "outcome")
    # On a narrow screen ids stay whole (they are copied), dates fold at the space,
    # payloads fold last: every column keeps a readable minimum.
    table.collapse_padding = True
    table.columns[0].no_wrap = True
    for column, least in zip(table.columns[1:], (5, 6, 5, 3, 10, 6, 6), strict=True):
        column.min_width = least
    now = datetime.now(UTC)
    for task in found:
        table.add_row(
            str(task.id),
            task.queue,
            task.status.value,
            f"{task.attempt}/{task.max_attempts}",
            str(task.priority),
            relative(task.run_at, now),
            compact(task.args, 40),
            _outcome(task, 40),
        )
    console.print(table)
    if len(found) == page.page_size:
        console.print(f"Page {page.page}; more may follow: --page {page.page + 1}")
    return 0


def _outcome(task: Task[Any], limit: int) -> str:
    if task.last_error and task.result is None:
        return compact(task.last_error, limit).strip('"')
    return compact(task.result, limit)


async def _show(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.FETCH_BY_ID) as backend:
        task = await backend.fetch_by_id(args.task_id)
        if task is None:
            raise CliError(f"no task {args.task_id} in backend {backend.name!r}")
    if args.json:
        emit_json(task_json(task))
        return 0
    table = new_table("field", "value")
    table.show_header = False
    rows = [
        ("id", str(task.id)),
        ("queue", task.queue),
        ("status", task.status.value),
        ("attempts", f"{task.attempt} of {task.max_attempts}"),
        ("priority", str(task.priority)),
        ("created", when(task.created_at)),
        ("run at", when(task.run_at)),
        ("args", compact(task.args, 2000)),
        ("result", compact(task.result, 2000)),
        ("last error", task.last_error or "-"),
        ("lease holder", task.lock_by or "-"),
        ("lease until", when(task.lease_until)),
    ]
    if task.meta:
        rows.append(("meta", compact(dict(task.meta), 2000)))
    for name, value in rows:
        table.add_row(name, value)
    stdout().print(table)
    return 0


async def _queues(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.LIST_QUEUES) as backend:
        found = await backend.list_queues()
    if args.json:
        emit_json([queue_json(q) for q in found])
        return 0
    console = stdout()
    if not found:
        console.print("No queues yet: a queue appears when a task is pushed to it.")
        return 0
    titles: list[str] = []
    for queue in found:
        for stat in sort_stats(queue.stats):
            if stat.title not in titles:
                titles.append(stat.title)
    table = new_table("queue", *(stat_title(t) for t in titles), "workers")
    table.columns[0].no_wrap = True
    table.collapse_padding = True
    for column in table.columns[1:]:
        column.justify = "right"
        # Headers like "Pending jobs" may wrap between words, never inside one.
        column.min_width = max(len(word) for word in str(column.header).split())
    for queue in found:
        by_title = {s.title: stat_value(s) for s in queue.stats}
        table.add_row(queue.name, *(by_title.get(t, "-") for t in titles), str(len(queue.workers)))
    console.print(table)
    return 0


async def _workers(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.LIST_WORKERS) as backend:
        found = await backend.list_workers(args.queue)
    if args.json:
        emit_json([worker_json(w) for w in found])
        return 0
    console = stdout()
    if not found:
        console.print("No workers registered.")
        return 0
    table = new_table("worker", "queue", "backend", "started", "last heartbeat", "layers")
    for worker in found:
        table.add_row(
            worker.id,
            worker.queue,
            worker.backend,
            when(worker.started_at),
            when(worker.last_heartbeat),
            worker.layers or "-",
        )
    console.print(table)
    return 0


async def _stats(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.METRICS) as backend:
        rows = await backend.metrics(args.queue)
        name = backend.name
    if args.json:
        emit_json([stat_json(s) for s in sort_stats(rows)])
        return 0
    render_stats(rows, f"{name} · {args.queue}" if args.queue else name)
    return 0


def render_stats(rows: list[Statistic], title: str) -> None:
    """Statistics as a two-column table, values formatted by their ``StatType``."""
    table = new_table("statistic", "value", title=title)
    table.columns[1].justify = "right"
    for stat in sort_stats(rows):
        table.add_row(stat_title(stat.title), stat_value(stat))
    stdout().print(table)
