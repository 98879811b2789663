"""The contract's rules, once, for backend authors: ``conveyor.rules``.

Pure functions over ``conveyor.Task`` records, one module per concept; a
backend reads the stored record, applies the rule, and writes the result back
in one transaction (or, like redis's Lua, keeps an atomic copy of the rule
that ``conveyor.testing.rules_table`` checks against these functions):

- ``claim``: a ready task taken by a worker (``order_key``, ``is_ready``: which first).
- ``settle``: the outcome of an attempt (``Done``/``Retry``/``Kill``/``Release``).
- ``extend``: a heartbeat; ``is_expired``, ``abandon``: a lease whose worker was lost.
- ``resume``, ``reschedule``, ``update``: an operator's changes; ``vacuumable``.

Plus ``BackendConfig`` (queue, lease_seconds, clock), which the facade reads
instead of a plugin's internals, validators for a plugin's own options, and
(``conveyor.rules.authoring``) the core pieces a plugin builds on. A backend
plugin imports ``conveyor`` and this layer, nothing else from the core.
"""

from __future__ import annotations

from conveyor.rules.abandon import abandon, lost_error
from conveyor.rules.claim import claim
from conveyor.rules.config import (
    MAX_QUEUE_NAME,
    MAX_SECONDS,
    BackendConfig,
    check_queue_name,
    clock,
    seconds,
    whole,
)
from conveyor.rules.lease import HELD_STATES, check_lease, extend, is_expired, is_held, new_token
from conveyor.rules.order import READY_STATES, is_ready, order_key
from conveyor.rules.record import build, replace
from conveyor.rules.reschedule import reschedule
from conveyor.rules.resume import RESUMABLE, resume
from conveyor.rules.settle import settle
from conveyor.rules.update import KEPT, UPDATABLE, update
from conveyor.rules.vacuum import FINAL_STATES, vacuumable

__all__ = [
    "FINAL_STATES",
    "HELD_STATES",
    "KEPT",
    "MAX_QUEUE_NAME",
    "MAX_SECONDS",
    "READY_STATES",
    "RESUMABLE",
    "UPDATABLE",
    "BackendConfig",
    "abandon",
    "build",
    "check_lease",
    "check_queue_name",
    "claim",
    "clock",
    "extend",
    "is_expired",
    "is_held",
    "is_ready",
    "lost_error",
    "new_token",
    "order_key",
    "replace",
    "reschedule",
    "resume",
    "seconds",
    "settle",
    "update",
    "vacuumable",
    "whole",
]
