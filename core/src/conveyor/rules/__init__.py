"""The contract's rules, once, for backend authors.

A backend plugin imports ``conveyor`` (the public API) and this layer, and
nothing else from the core: the configuration every backend shares
(``BackendConfig``) and the validators for its own options.
"""

from __future__ import annotations

from conveyor.rules.config import (
    MAX_QUEUE_NAME,
    MAX_SECONDS,
    BackendConfig,
    check_queue_name,
    clock,
    seconds,
    whole,
)

__all__ = [
    "MAX_QUEUE_NAME",
    "MAX_SECONDS",
    "BackendConfig",
    "check_queue_name",
    "clock",
    "seconds",
    "whole",
]
