"""The core's pieces a backend plugin builds on, besides the rules themselves.

Plugins import ``conveyor`` and ``conveyor.rules`` only; what they need from
deeper modules (a clock to default to, the standard metrics rows, the tools
that assemble a plugin object from functions) is re-exported here, so the
core can move its modules without breaking any backend.
"""

from __future__ import annotations

from conveyor.clock import SYSTEM_CLOCK, at
from conveyor.expose import status_statistics
from conveyor.lease import DEFAULT_LEASE_SECONDS
from conveyor.plugin import (
    HOOK_NAMES,
    assemble,
    capabilities_of,
    implemented_hooks,
    spec_parameters,
)
from conveyor.poll_strategy import Backoff, PollStrategy, poll_with

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "HOOK_NAMES",
    "SYSTEM_CLOCK",
    "Backoff",
    "PollStrategy",
    "assemble",
    "at",
    "capabilities_of",
    "implemented_hooks",
    "poll_with",
    "spec_parameters",
    "status_statistics",
]
