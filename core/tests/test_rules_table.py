"""The table of cases (conveyor.testing.rules_table) through the pure rules."""

from __future__ import annotations

import pytest

from conveyor.testing.rules_table import (
    CASES,
    Case,
    check_case,
    rules_observed,
)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_rules(case: Case) -> None:
    check_case(case, await rules_observed(case))


def test_the_table_is_large_and_covers_every_operation() -> None:
    assert len(CASES) >= 80
    ops = {type(case.op).__name__ for case in CASES}
    assert ops >= {"Claim", "Ack", "Heartbeat", "Reschedule", "ResumeById", "ResumeAbandoned"}
    assert ops >= {"Update", "Vacuum"}
