"""Memory claims every capability but ``migrate`` (it has no schema): a hook that lost
its ``@hookimpl`` must be noticed.

Found by mutation testing: with ``check_status``'s mark removed, the suite
skipped the capability's tests instead of failing (a backend lacking a hook is
allowed). test_conformance.py asserts the same through ``conveyor check``; this
is the fast form the mutation run uses.
"""

from __future__ import annotations

import conveyor
from conveyor import Capability


def test_memory_implements_every_hook() -> None:
    backend = conveyor.open("memory")
    missing = set(Capability) - set(backend.capabilities) - {Capability.MIGRATE}
    assert Capability.MIGRATE not in backend.capabilities
    assert not missing, f"memory lost {sorted(c.value for c in missing)}"
