"""The rules table through the SQL: every case of ``conveyor.testing.rules_table`` run
on the real server (a fresh schema per case), compared with the pure rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conveyor import Backend, ManualClock
from conveyor.testing.rules_table import CASES, LEASE_SECONDS, T0, Case, check_backend

# The table (and hookspecs.py, and docs/design-notes.md) give a held task its attempt
# back when it is resumed or rescheduled by hand; the conformance suite on main (its
# model and TestResumeById) and the memory and redis backends keep it counted. This
# backend follows the suite, which `make test` holds every backend to; these cases
# disagree until the two are reconciled (two lines of sql.py and backend.py flip it,
# checked: then all 136 pass and those two suite tests fail). Strict: one that starts
# passing fails here, so the list cannot go stale.
ATTEMPT_GIVEN_BACK = {
    "done after resume_by_id", "previous holder after a new claim", "resume running a1/3",
    "resume running a3/3", "resume expired a2/3", "claim after resume of a1/1",
    "reschedule running by id", "reschedule running a3/3 by id", "reschedule expired by id",
    "reschedule with held token", "claim after reschedule of a1/1",
    "claim before rescheduled time",
}  # fmt: skip


def _marked(case: Case) -> object:
    if str(case) in ATTEMPT_GIVEN_BACK:
        reason = "suite and table disagree: is a resumed held task's attempt given back?"
        return pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=reason))
    return case


@pytest.mark.parametrize("case", [_marked(c) for c in CASES], ids=str)
async def test_rules_table(case: Case, pg_open: Callable[..., Backend]) -> None:
    clock = ManualClock(T0)
    backend = pg_open(clock=clock, lease_seconds=LEASE_SECONDS)
    async with backend:
        await check_backend(case, backend, clock)
