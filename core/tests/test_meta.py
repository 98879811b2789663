"""Meta-tests: the contract is documented, one-to-one with capabilities, and exercised."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from conveyor import Capability, hookspecs
from conveyor.capability import BACKEND_HOOKS
from conveyor.plugin import HOOK_NAMES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(HOOK_NAMES))
def test_every_hookspec_is_documented_with_its_parameters(name: str) -> None:
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    assert len(doc.split()) >= 8, f"hookspec {name} needs a real docstring"
    for param in inspect.signature(spec).parameters:
        assert re.search(rf"\b{param}\b", doc), f"hookspec {name}: docstring never names {param!r}"


def test_every_optional_hook_is_exactly_one_capability() -> None:
    optional = HOOK_NAMES - BACKEND_HOOKS
    hooked = {c.value for c in Capability if not c.derived}
    assert hooked == optional
    assert {"poll", "heartbeat", "middleware"} <= HOOK_NAMES


def test_the_design_capabilities_are_all_there() -> None:
    design = {
        "push", "push_weak", "fetch_by_id", "update", "reschedule", "vacuum", "resume_by_id",
        "resume_abandoned", "register_worker", "list_tasks", "list_all_tasks", "list_queues",
        "list_workers", "metrics", "wait_for", "check_status", "get_queue", "make_shared",
    }  # fmt: skip
    assert design <= {c.value for c in Capability}
    assert len(design) >= 17


def _test_sources() -> str:
    places = [
        ROOT / "core" / "tests",
        ROOT / "tests",
        ROOT / "core" / "src" / "conveyor" / "testing",
    ]
    places += sorted((ROOT / "plugins").glob("*/tests"))
    texts = []
    for place in places:
        texts += [p.read_text() for p in place.rglob("*.py") if p.name != Path(__file__).name]
    return "\n".join(texts)


@pytest.mark.parametrize("name", sorted(HOOK_NAMES))
def test_every_hook_is_exercised_by_some_test(name: str) -> None:
    # A call through the facade (backend.name(...)) or the resolved hooks (hooks.name(...)).
    pattern = r"\.a?close\(" if name == "close" else rf"\.{name}\("
    assert re.search(pattern, _test_sources()), f"no test calls the {name!r} hook"
