"""An argparse parser whose usage errors are one line and exit status 1."""

from __future__ import annotations

import argparse
from typing import NoReturn

from conveyor.cli.errors import CliError

__all__ = ["Parser"]


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` that raises ``CliError`` instead of printing usage and exiting 2.

    Exit status 2 is kept for "the backend cannot do that", so a mistyped option
    is an ordinary user error (1) with a pointer to ``--help``.
    """

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')")


def backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend/-b URL``, also accepted before the command name."""
    parser.add_argument(
        "-b",
        "--backend",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="backend URL, e.g. json:///var/lib/app/tasks.json"
        " (default: $CONVEYOR_BACKEND, else [tool.conveyor] backend in pyproject.toml)",
    )


def json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: machine-readable output."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
