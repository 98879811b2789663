"""The rules table through the SQL: every case of ``conveyor.testing.rules_table`` run
on the real server (a fresh schema per case), compared with the pure rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor import Backend, ManualClock
from conveyor.testing.rules_table import CASES, LEASE_SECONDS, T0, Case, check_backend

# Cases the SQL is known to disagree on (none today). Strict: one that starts passing
# fails here, so the list cannot go stale.
ATTEMPT_GIVEN_BACK: set[str] = set()


def _marked(case: Case) -> object:
    if str(case) in ATTEMPT_GIVEN_BACK:
        reason = "the SQL disagrees with the rules"
        return pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=reason))
    return case


@pytest.mark.parametrize("case", [_marked(c) for c in CASES], ids=str)
async def test_rules_table(case: Case, pg_open: Callable[..., Backend]) -> None:
    clock = ManualClock(T0)
    backend = pg_open(clock=clock, lease_seconds=LEASE_SECONDS)
    async with backend:
        await check_backend(case, backend, clock)
