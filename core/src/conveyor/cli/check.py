"""``conveyor check``: the conformance suite, run by ``conveyor.check``."""

from __future__ import annotations

import argparse
from typing import Any

from conveyor.cli.errors import CliError

__all__ = ["configure", "run"]


def configure(commands: Any) -> None:
    """Add ``check``; its arguments are ``conveyor.check``'s own (see ``conveyor check --help``)."""
    parser = commands.add_parser(
        "check",
        help="run the conformance suite against a backend",
        add_help=False,
        prefix_chars="\0",  # every argument, --help included, belongs to conveyor.check
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Hand the arguments (and a ``--backend`` given before ``check``) to ``conveyor.check``."""
    try:
        from conveyor.check import main as check_main
    except ImportError as exc:  # pytest (the suite's runner) is not installed
        raise CliError(
            f"conveyor check needs the test suite's dependencies ({exc});"
            " install them with: pip install 'conveyor[testing]'"
        ) from None
    argv = list(args.rest)
    if args.backend is not None:
        argv = ["--backend", args.backend, *argv]
    return int(check_main(argv) or 0)
