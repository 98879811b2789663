"""The contract's table of cases (conveyor.testing.rules_table) through redis's Lua scripts,
against a real server, compared case by case with the pure rules of conveyor.rules.

The Lua keeps its own copy of the rules for atomicity; this is what holds the copy
to the original. A case the Lua is known to disagree on is a strict xfail here (``LUA_KNOWN``,
empty today), so a fix shows up as a failure asking to take it off the list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conveyor import Backend, ManualClock
from conveyor.testing.rules_table import CASES, LEASE_SECONDS, T0, Case, check_backend

LUA_KNOWN: frozenset[str] = frozenset()
"""Cases the Lua scripts are known to disagree on: none."""


def _params() -> list[Any]:
    return [
        pytest.param(
            case,
            id=str(case),
            marks=[pytest.mark.xfail(strict=True, reason="the Lua disagrees with the rules")]
            if case.name in LUA_KNOWN
            else [],
        )
        for case in CASES
    ]


@pytest.mark.parametrize("case", _params())
async def test_the_lua_keeps_the_rules(case: Case, redis_open: Callable[..., Backend]) -> None:
    clock = ManualClock(T0)
    async with redis_open(clock=clock, lease_seconds=LEASE_SECONDS) as backend:
        await check_backend(case, backend, clock)
