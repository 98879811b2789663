"""How the command line fails: one line on stderr and a documented exit status."""

from __future__ import annotations

__all__ = ["CliError", "USER_ERROR", "UNSUPPORTED", "INTERRUPTED"]

USER_ERROR = 1
"""Exit status for a mistake the user can fix: bad input, unknown backend or task, bad config."""

UNSUPPORTED = 2
"""Exit status when the backend lacks the capability a command needs."""

INTERRUPTED = 130
"""Exit status after Ctrl-C stopped a command that is not a worker."""


class CliError(Exception):
    """A failure to report as ``conveyor: error: <message>`` and exit with ``status``."""

    def __init__(self, message: str, status: int = USER_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
