"""Opening the backend a command works on, and checking it can do what is asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import conveyor
from conveyor.backend import Backend
from conveyor.capability import Capability

__all__ = ["opened"]


@asynccontextmanager
async def opened(
    target: str | None, *capabilities: Capability, **config: Any
) -> AsyncIterator[Backend]:
    """The backend at ``target`` (else ``CONVEYOR_BACKEND``, else ``[tool.conveyor]``),
    checked for ``capabilities`` before anything is done, closed afterwards.

    ``UnsupportedCapability`` is raised before any work starts, so a command
    never half-runs on a backend that cannot finish it.
    """
    backend = conveyor.open(target, **config)
    try:
        backend.require(*capabilities)
        yield backend
    finally:
        await backend.aclose()
