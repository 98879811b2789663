"""The base of every suite test class: the capability gate and the skips for what a test needs."""

from __future__ import annotations

import inspect
from typing import ClassVar

import pytest
import pytest_asyncio

from conveyor.capability import Capability
from conveyor.errors import UnsupportedCapability
from conveyor.testing.findings import finding_for
from conveyor.testing.support import Suite, lacking_call

__all__ = ["SuiteTests", "need", "need_clock"]


def need(suite: Suite, *caps: Capability) -> None:
    """Skip the test, naming what is missing, unless the backend has every one of ``caps``."""
    missing = [c.value for c in caps if not suite.backend.supports(c)]
    if missing:
        pytest.skip(f"this check also needs {', '.join(missing)}, which the backend lacks")


def need_clock(suite: Suite) -> None:
    """Skip the test unless the backend runs on the suite's manual clock."""
    if suite.clock is None:
        pytest.skip("needs to move time: the conveyor_clock fixture returned None")


class SuiteTests:
    """Tests of one capability (``capability``) or, with ``None``, of the required trait.

    When the backend lacks ``capability``, every test of the class is skipped with
    that reason, after checking that calling it raises ``UnsupportedCapability``
    (a backend can neither silently claim nor silently lack a capability).
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]
    capability: ClassVar[Capability | None] = None
    row: ClassVar[str | None] = None
    """The ``conveyor check`` row of a class with no capability (default: its name)."""

    @pytest_asyncio.fixture(autouse=True)
    async def _capability_gate(self, conveyor_suite: Suite, request: pytest.FixtureRequest) -> None:
        cap = self.capability
        backend = conveyor_suite.backend
        test = f"{type(self).__name__}::{request.node.originalname}"
        known = finding_for(backend.name, backend.plugin, test)
        if known is not None and not known.run:
            pytest.xfail(f"known finding {known.label}: {known.text} (not run)")
        if known is not None:
            request.node.add_marker(
                pytest.mark.xfail(reason=f"known finding {known.label}: {known.text}", strict=False)
            )
        if cap is None or backend.supports(cap):
            return
        try:
            result = lacking_call(backend, cap)()
            if inspect.isawaitable(result):
                await result
        except UnsupportedCapability as exc:
            if exc.capability != cap.value:
                pytest.fail(
                    f"calling {cap.value} raised UnsupportedCapability for {exc.capability!r}"
                )
        else:
            pytest.fail(
                f"backend {backend.name!r} lacks {cap.value!r} but calling it did not raise"
                " UnsupportedCapability"
            )
        pytest.skip(
            f"backend {backend.name!r} lacks capability {cap.value!r} (no {cap.value} hook);"
            " calling it raises UnsupportedCapability as it should"
        )
