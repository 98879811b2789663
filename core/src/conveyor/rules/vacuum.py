"""What ``vacuum`` may delete: finished tasks, nothing else."""

from __future__ import annotations

from typing import Any

from conveyor.status import Status
from conveyor.task import Task

__all__ = ["vacuumable", "FINAL_STATES"]

FINAL_STATES = frozenset({Status.DONE, Status.KILLED})
"""States nothing runs again unless resumed; the only ones ``vacuum`` deletes."""


def vacuumable(task: Task[Any]) -> bool:
    """Whether ``vacuum`` deletes ``task``: it is ``DONE`` or ``KILLED``."""
    return task.status in FINAL_STATES
