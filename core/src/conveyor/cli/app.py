"""The ``conveyor`` command: its parser, and turning failures into one line and a status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import conveyor
from conveyor.cli import backends, check, listing, maintenance, migrate, push, worker
from conveyor.cli.errors import (
    INTERRUPTED,
    TRACEBACK_VAR,
    UNAVAILABLE,
    USER_ERROR,
    CliError,
    describe,
    status_of,
)
from conveyor.cli.parser import Parser
from conveyor.errors import ConveyorError

__all__ = ["build_parser", "main"]

EPILOG = """\
The backend is --backend/-b URL (before or after the command), else
$CONVEYOR_BACKEND, else 'backend' under [tool.conveyor] in the nearest
pyproject.toml. Exit status: 0 ok, 1 a mistake to fix (the message says which),
2 the backend lacks a capability the command needs, 3 the backend cannot be
reached or failed, 130 interrupted. Errors are one line; CONVEYOR_TRACEBACK=1
shows the traceback behind an unexpected one."""


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
    migrate.configure(commands)
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


def _readable_output() -> None:
    # A stored string UTF-8 cannot encode (a lone surrogate) is printed escaped
    # (\ud800) instead of failing the whole listing; stderr already does this.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (never raises for a user mistake)."""
    _readable_output()
    try:
        args = build_parser().parse_args(argv)
        return int(args.command(args) or 0)
    except CliError as exc:
        return _fail(exc.message, exc.status)
    except ConveyorError as exc:
        return _fail(str(exc), status_of(exc))
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return 0  # the reader (head, less) went away: not an error
        status = UNAVAILABLE if isinstance(exc, ConnectionError | TimeoutError) else USER_ERROR
        return _fail(
            f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), status
        )
    except KeyboardInterrupt:
        print("conveyor: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        if os.environ.get(TRACEBACK_VAR):
            raise
        return _fail(
            f"unexpected {describe(exc)}; this is a bug: run again with {TRACEBACK_VAR}=1"
            " to see where, and report it",
            USER_ERROR,
        )
