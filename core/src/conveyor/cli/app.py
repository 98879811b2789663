"""The ``conveyor`` command: its parser, and turning failures into one line and a status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import conveyor
from conveyor.cli import backends, check, listing, maintenance, push, worker
from conveyor.cli.errors import INTERRUPTED, UNSUPPORTED, USER_ERROR, CliError
from conveyor.cli.parser import Parser
from conveyor.errors import ConveyorError, UnsupportedCapability

__all__ = ["build_parser", "main"]

EPILOG = """\
The backend is --backend/-b URL (before or after the command), else
$CONVEYOR_BACKEND, else 'backend' under [tool.conveyor] in the nearest
pyproject.toml. Exit status: 0 ok, 1 a mistake to fix (the message says which),
2 the backend lacks a capability the command needs."""


def build_parser() -> Parser:
    """The full argument parser."""
    parser = Parser(
        prog="conveyor",
        description="Operate conveyor task backends: push tasks, run workers, inspect queues.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-b", "--backend", metavar="URL", default=None, help="backend URL")
    parser.add_argument(
        "--version", action="version", version=f"conveyor {_version()}", help="show the version"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    listed = commands.add_parser("backends", help="installed backends and their capabilities")
    listed.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listed.set_defaults(command=lambda args: backends.run(args, conveyor.registry))
    check.configure(commands)
    push.configure(commands)
    worker.configure(commands)
    listing.configure(commands)
    maintenance.configure(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("conveyor")
    except PackageNotFoundError:
        return "unknown"


def _fail(message: str, status: int) -> int:
    line = " ".join(str(message).split())  # one line, whatever the message held
    print(f"conveyor: error: {line}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (never raises for a user mistake)."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.command(args) or 0)
    except CliError as exc:
        return _fail(exc.message, exc.status)
    except UnsupportedCapability as exc:
        return _fail(str(exc), UNSUPPORTED)
    except ConveyorError as exc:
        return _fail(str(exc), USER_ERROR)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return 0  # the reader (head, less) went away: not an error
        return _fail(
            f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), USER_ERROR
        )
    except KeyboardInterrupt:
        print("conveyor: interrupted", file=sys.stderr)
        return INTERRUPTED
