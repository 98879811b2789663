"""``conveyor push``: one task from a JSON argument, or many from a JSON-lines file."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from conveyor.capability import Capability
from conveyor.cli.bulk import MAX_LINE_BYTES, MAX_LINE_LIMIT, push_file
from conveyor.cli.errors import CliError
from conveyor.cli.parser import backend_option
from conveyor.cli.payload import (
    QUOTING,
    attempts_arg,
    bounded_arg,
    delay_arg,
    name_arg,
    parse_json,
    queue_arg,
    when_arg,
    whole_arg,
)
from conveyor.cli.session import opened

__all__ = ["configure", "run"]

DESCRIPTION = """\
Push one task and print its id, or push every line of a JSON-lines file
(--from FILE, or --from - for stdin) and print how many were pushed.
Lines are pushed in chunks of 1000; a malformed line stops the run with the
chunks before it pushed and nothing from its own chunk."""


def configure(commands: Any) -> None:
    """Add the ``push`` command."""
    parser = commands.add_parser(
        "push", help="push a task (or a JSON-lines file of tasks)", description=DESCRIPTION
    )
    backend_option(parser)
    parser.add_argument("payload", nargs="?", metavar="PAYLOAD_JSON", help="the task's arguments")
    parser.add_argument(
        "--from", dest="source", metavar="FILE", help="push one payload per line ('-': stdin)"
    )
    parser.add_argument("--queue", "-q", type=queue_arg, help="queue (default: the backend's)")
    parser.add_argument(
        "--name", type=name_arg, metavar="NAME", help="the task's name, e.g. emails.send"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--delay", type=delay_arg, metavar="SECONDS", help="run after a delay")
    when.add_argument("--at", type=when_arg, metavar="ISO8601", help="run at a time (with zone)")
    parser.add_argument(
        "--priority", type=whole_arg, default=0, metavar="N", help="higher runs first (default: 0)"
    )
    parser.add_argument("--max-attempts", type=attempts_arg, metavar="N", help="default: 5")
    parser.add_argument(
        "--max-line-bytes",
        type=bounded_arg(1, MAX_LINE_LIMIT),
        default=MAX_LINE_BYTES,
        metavar="N",
        help=f"longest line --from accepts (default: {MAX_LINE_BYTES})",
    )
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Push and print the id (single) or the count (bulk)."""
    if (args.payload is None) == (args.source is None):
        raise CliError("give either PAYLOAD_JSON or --from FILE (see 'conveyor push --help')")
    options: dict[str, Any] = {
        "queue": args.queue,
        "delay": args.delay,
        "run_at": args.at,
        "priority": args.priority,
        "max_attempts": args.max_attempts,
        "name": args.name,
    }
    if args.source is not None:
        print(push_file(args.backend, args.source, options=options, max_line=args.max_line_bytes))
        return 0
    payload = parse_json(args.payload, "PAYLOAD_JSON", hint=QUOTING)
    print(asyncio.run(_one(args.backend, payload, options)))
    return 0


async def _one(target: str | None, payload: Any, options: dict[str, Any]) -> str:
    async with opened(target, Capability.PUSH) as backend:
        return str(await backend.push(payload, **options))
