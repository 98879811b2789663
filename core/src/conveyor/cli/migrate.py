"""``conveyor migrate``: bring a backend's schema up to date, or print the SQL that would."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from conveyor.capability import Capability
from conveyor.cli.parser import backend_option
from conveyor.cli.session import opened

__all__ = ["configure"]


def configure(commands: Any) -> None:
    """Add ``migrate``."""
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the backend's schema (or print its SQL with --sql)",
        description="Apply the statements that bring the backend's schema to the version"
        " this conveyor needs (idempotent; safe while workers run), or with --sql print"
        " them without changing anything, for teams that run migrations themselves.",
    )
    backend_option(migrate)
    migrate.add_argument("--sql", action="store_true", help="print the SQL instead of applying it")
    migrate.set_defaults(command=lambda args: asyncio.run(_migrate(args)))


async def _migrate(args: argparse.Namespace) -> int:
    # Opening connects nothing, so --sql shows the plan before anything is applied.
    async with opened(args.backend, Capability.MIGRATE) as backend:
        text = await backend.migrate(apply=not args.sql)
    if args.sql:
        print(text.rstrip("\n") if text else "-- the schema is up to date: nothing to run")
    else:
        print("applied:" if text else "the schema is up to date: nothing to run")
        if text:
            print(text.rstrip("\n"))
    return 0
