"""Migrate: the store's schema is brought up to date idempotently, and reported as text."""

from __future__ import annotations

from conveyor.capability import Capability
from conveyor.testing.base import SuiteTests, need
from conveyor.testing.support import Suite, claim, guard

__all__ = ["TestMigrate"]


class TestMigrate(SuiteTests):
    """migrate(apply=...) returns the statements it runs or would run; '' once current."""

    capability = Capability.MIGRATE

    async def test_applying_twice_changes_nothing_the_second_time(
        self, conveyor_suite: Suite
    ) -> None:
        backend = conveyor_suite.backend
        first = await guard(backend.migrate(apply=True), "migrate(apply=True)")
        assert isinstance(first, str), "migrate returns the statements as text"
        again = await guard(backend.migrate(apply=True), "a second migrate(apply=True)")
        assert again == "", f"a current store needs no statements, got {again[:200]!r}"
        assert await backend.migrate(apply=False) == "", "a current store reports ''"

    async def test_the_store_works_after_migrating(self, conveyor_suite: Suite) -> None:
        need(conveyor_suite, Capability.PUSH)
        backend = conveyor_suite.backend
        await backend.migrate(apply=True)
        tid = await backend.push("after migrate")
        task = await claim(backend)
        assert task is not None and task.id == tid

    async def test_reporting_changes_nothing(self, conveyor_suite: Suite) -> None:
        backend = conveyor_suite.backend
        shown = await backend.migrate(apply=False)
        assert shown == await backend.migrate(apply=False), "apply=False must not change the store"
