"""BackendConfig is all the facade reads of a plugin; plugins import only conveyor and
conveyor.rules; the registry hands ``codec=`` to a config that has a codec field."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import conveyor
from conveyor import Backend, JsonCodec, ManualClock, Task, WorkerInfo, hookimpl, rules
from conveyor.clock import SYSTEM_CLOCK

ROOT = Path(__file__).parents[2]


class _Plugin:
    def __init__(self, config: Any) -> None:
        self.config = config

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        yield None


def test_the_facade_reads_a_backend_config() -> None:
    clock, codec = ManualClock(5), JsonCodec()
    config = rules.BackendConfig(lease_seconds=7, clock=clock, codec=codec)
    backend = Backend(_Plugin(config), name="p")
    assert backend.clock is clock and backend.lease_seconds == 7 and backend.codec is codec
    assert backend.config is config


def test_the_facade_reads_nothing_else_of_a_plugin() -> None:
    @attrs.frozen
    class Lookalike:  # has a clock, but is not a BackendConfig
        clock: Any
        lease_seconds: float = 9.0

    backend = Backend(_Plugin(Lookalike(ManualClock(5))), name="p")
    assert backend.clock is SYSTEM_CLOCK and backend.lease_seconds is None
    assert backend.config is None


def test_a_codec_that_is_not_one_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"codec must be a conveyor\.Codec"):
        rules.BackendConfig(codec="json")


def test_the_registry_puts_the_codec_into_the_config() -> None:
    codec = JsonCodec()
    backend = conveyor.open("memory", codec=codec)
    assert backend.codec is codec
    assert backend.config is not None and backend.config.codec is codec


MINE = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/src"))
MINE += ["examples/sqlite/src", "plugins/custom/examples"]


@pytest.mark.parametrize("folder", MINE)
def test_plugins_import_only_conveyor_and_conveyor_rules(folder: str) -> None:
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name == "conveyor" or not name.startswith("conveyor."):
                    continue
                assert name.startswith("conveyor.rules"), f"{path}: imports {name}"
