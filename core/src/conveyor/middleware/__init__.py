"""Worker middleware: the base types (``conveyor.middleware.base``) and the built-in layers.

Each built-in layer lives in its own module and imports only ``base``, so this
package imports its modules in one direction.
"""

from __future__ import annotations

from conveyor.middleware.base import Invocation, Middleware, Next
from conveyor.middleware.concurrency import ConcurrencyLimit
from conveyor.middleware.retry import RetryPolicy
from conveyor.middleware.timeout import TaskTimeout, Timeout

__all__ = [
    "ConcurrencyLimit",
    "Invocation",
    "Middleware",
    "Next",
    "RetryPolicy",
    "TaskTimeout",
    "Timeout",
]
