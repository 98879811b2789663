"""Opening the backend a command works on, and checking it can do what is asked."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import conveyor
from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.cli.errors import TRACEBACK_VAR, UNAVAILABLE, BackendFailed, CliError, describe
from conveyor.config import configured_target, parse_target
from conveyor.errors import ConveyorError

__all__ = ["opened"]

# Passed through as they are: conveyor's own errors say what to do, OSError is
# shown by its strerror, and a user's interrupt is not a failure of the backend.
_OURS = (ConveyorError, CliError, OSError)


@asynccontextmanager
async def opened(
    target: str | None, *capabilities: Capability, **config: Any
) -> AsyncIterator[Backend]:
    """The backend at ``target`` (else ``CONVEYOR_BACKEND``, else ``[tool.conveyor]``),
    checked for ``capabilities`` before anything is done, closed afterwards.

    ``UnsupportedCapability`` is raised before any work starts, so a command
    never half-runs on a backend that cannot finish it. Anything else a backend
    raises that is not a ``ConveyorError`` (a driver's own connection error) becomes
    ``BackendFailed``: one line naming the backend, exit 1 while opening (usually
    the URL), 3 afterwards.
    """
    try:
        backend = conveyor.open(target, **config)
    except _OURS:
        raise
    except Exception as exc:
        if os.environ.get(TRACEBACK_VAR):
            raise
        raise BackendFailed(f"cannot open {_which(target)}: {describe(exc)}") from exc
    failed = False
    try:
        backend.require(*capabilities)
        yield backend
    except _OURS:
        failed = True
        raise
    except Exception as exc:
        failed = True
        if os.environ.get(TRACEBACK_VAR):
            raise
        message = f"backend {backend.name!r} failed: {describe(exc)}"
        raise BackendFailed(message, UNAVAILABLE) from exc
    except BaseException:
        failed = True
        raise
    finally:
        await _close(backend, failed)


async def _close(backend: Backend, failed: bool) -> None:
    try:
        await backend.aclose()
    except Exception as exc:
        if failed:
            return  # an error while closing after another would hide the first
        if isinstance(exc, _OURS) or os.environ.get(TRACEBACK_VAR):
            raise
        raise BackendFailed(
            f"backend {backend.name!r} failed to close: {describe(exc)}", UNAVAILABLE
        ) from exc


def _which(target: str | None) -> str:
    # The name only: a URL may hold a password.
    try:
        name, _ = parse_target(target or configured_target() or "")
    except ConveyorError:
        return "the backend"
    return f"backend {name!r}"
