"""The ``conveyor`` command line (console script ``conveyor = conveyor.cli:main``).

``main(argv)`` returns the exit status: 0 ok, 1 a user mistake (one line on
stderr), 2 the backend lacks a capability the command needs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``conveyor`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    from conveyor.cli.app import main as run

    return run(sys.argv[1:] if argv is None else argv)
