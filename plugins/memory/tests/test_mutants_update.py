"""What ``update`` may not change: a hookspec promise the conformance suite does not check.

Found by mutation testing: in memory's old ``ack``, ``attempt >= max_attempts``
survived as ``==``, equivalent only if no task can have ``attempt > max_attempts``.
The ``update`` hookspec promises that (``max_attempts`` below the stored
``attempt`` is a ``ValueError``; ``attempt`` and the lease are kept from the
store) and no suite test checks it (finding M1 in /work/notes/mutation-findings.md);
memory broke it until it adopted ``conveyor.rules.update``.
"""

from __future__ import annotations

import attrs
import pytest

import conveyor
from conveyor import ManualClock, Status
from conveyor.testing.support import claim


async def test_update_keeps_the_attempt_and_the_lease_of_a_held_task() -> None:
    backend = conveyor.open("memory", clock=ManualClock(1_700_000_000.0))
    task_id = await backend.push("x", max_attempts=3)
    held = await claim(backend)
    assert held is not None
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None
    forged = attrs.evolve(stored, attempt=0, lock_by=None, lease_token=None, priority=3)
    await backend.update(forged)
    after = await backend.fetch_by_id(task_id)
    assert after is not None and after.priority == 3, "the allowed change was not made"
    assert (after.status, after.attempt) == (Status.RUNNING, 1)
    assert (after.lock_by, after.lease_token) == (held.lock_by, held.lease_token)


async def test_update_refuses_max_attempts_below_the_attempt() -> None:
    backend = conveyor.open("memory", clock=ManualClock(1_700_000_000.0))
    task_id = await backend.push("x", max_attempts=3)
    assert await claim(backend) is not None
    stored = await backend.fetch_by_id(task_id)
    assert stored is not None and stored.attempt == 1
    with pytest.raises(ValueError, match="max_attempts"):
        await backend.update(attrs.evolve(stored, max_attempts=0))
