"""The commands that change stored tasks by hand: ``vacuum`` and ``resume``."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from conveyor.capability import Capability
from conveyor.cli.errors import CliError
from conveyor.cli.listing import task_id_arg
from conveyor.cli.parser import backend_option
from conveyor.cli.session import opened

__all__ = ["configure"]


def configure(commands: Any) -> None:
    """Add ``vacuum`` and ``resume``."""
    vacuum = commands.add_parser("vacuum", help="delete Done and Killed tasks; print how many")
    backend_option(vacuum)
    vacuum.set_defaults(command=lambda args: asyncio.run(_vacuum(args)))

    resume = commands.add_parser(
        "resume",
        help="run a Failed, Killed or stuck task again, or put back abandoned ones",
        description="Resume one task by id (a Killed task gets its attempts back), or with"
        " --abandoned put back every task whose worker's lease expired; prints how many.",
    )
    backend_option(resume)
    resume.add_argument("task_id", nargs="?", type=task_id_arg, metavar="TASK_ID")
    resume.add_argument(
        "--abandoned", action="store_true", help="resume tasks of workers that stopped heartbeating"
    )
    resume.set_defaults(command=lambda args: asyncio.run(_resume(args)))


async def _vacuum(args: argparse.Namespace) -> int:
    async with opened(args.backend, Capability.VACUUM) as backend:
        print(await backend.vacuum())
    return 0


async def _resume(args: argparse.Namespace) -> int:
    if (args.task_id is None) == (not args.abandoned):
        raise CliError("give either TASK_ID or --abandoned (see 'conveyor resume --help')")
    if args.abandoned:
        async with opened(args.backend, Capability.RESUME_ABANDONED) as backend:
            print(await backend.resume_abandoned())
        return 0
    async with opened(args.backend, Capability.RESUME_BY_ID) as backend:
        if await backend.resume_by_id(args.task_id):
            print(1)
            return 0
        why = "it is Done or already waiting to run"
        if backend.supports(Capability.FETCH_BY_ID):
            task = await backend.fetch_by_id(args.task_id)
            if task is None:
                raise CliError(f"no task {args.task_id} in backend {backend.name!r}")
            why = f"it is {task.status.value}"
        raise CliError(
            f"task {args.task_id} was not resumed: {why};"
            " only Failed, Killed or Running tasks can be resumed"
        )
