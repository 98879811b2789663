"""How the suite's test classes get collected beside an author's conftest."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

__all__ = ["ConformanceModule", "defines_backend_fixture", "SUITE_MODULE"]

SUITE_MODULE = "conveyor.testing.suite"


def defines_backend_fixture(config: pytest.Config, conftest: Path) -> bool:
    """Whether the (already loaded) conftest at ``conftest`` defines ``conveyor_backend``."""
    module = config.pluginmanager.get_plugin(str(conftest))
    return module is not None and hasattr(module, "conveyor_backend")


class ConformanceModule(pytest.Module):
    """A collector standing at the author's conftest whose tests are the suite's classes.

    Standing at the conftest's path means the author's fixtures (defined there)
    apply, and the node ids read ``tests/conftest.py::TestPush::test_...``.
    """

    def _getobj(self) -> ModuleType:
        return importlib.import_module(SUITE_MODULE)
