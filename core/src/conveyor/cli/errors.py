"""How the command line fails: one line on stderr and a documented exit status."""

from __future__ import annotations

from conveyor.errors import BackendUnavailable, ConveyorError, UnsupportedCapability

__all__ = [
    "CliError",
    "BackendFailed",
    "USER_ERROR",
    "UNSUPPORTED",
    "UNAVAILABLE",
    "INTERRUPTED",
    "TRACEBACK_VAR",
    "describe",
    "status_of",
]

USER_ERROR = 1
"""Exit status for a mistake the user can fix: bad input, unknown backend or task, bad config."""

UNSUPPORTED = 2
"""Exit status when the backend lacks the capability a command needs."""

UNAVAILABLE = 3
"""Exit status when the backend cannot be reached or failed (retrying later may work)."""

INTERRUPTED = 130
"""Exit status after Ctrl-C stopped a command that is not a worker."""

TRACEBACK_VAR = "CONVEYOR_TRACEBACK"
"""Set to 1 to see the traceback behind an unexpected error (for a bug report)."""


class CliError(Exception):
    """A failure to report as ``conveyor: error: <message>`` and exit with ``status``."""

    def __init__(self, message: str, status: int = USER_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class BackendFailed(CliError):
    """A backend (or the library under it) raised something that is not a conveyor error."""


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, without a trailing period (the caller goes on)."""
    text = " ".join(str(exc).split()).rstrip(".")
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def status_of(exc: CliError | ConveyorError) -> int:
    """The exit status for ``exc``: its own for a ``CliError``, else by its kind."""
    if isinstance(exc, CliError):
        return exc.status
    if isinstance(exc, UnsupportedCapability):
        return UNSUPPORTED
    if isinstance(exc, BackendUnavailable):
        return UNAVAILABLE
    return USER_ERROR
