"""The conformance suite is worth what it catches: every broken variant must fail it.

Each variant (``tests/broken/variants.py``) gets a folder with a conftest exactly
as a third-party author would write it (pytest-asyncio's strict mode), and the
suite class expected to catch it runs there. Both intact backends (memory, and
the independent one the seeded variants come from) run the whole harness and
must pass it, so a failure is the variant's, not the harness's. Every folder
runs in one pytest subprocess: one interpreter start instead of forty.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).resolve().parent / "broken"
sys.path.insert(0, str(BROKEN))
from variants import SEEDED, VARIANTS  # noqa: E402

INTACTS = ("INTACT", "INTACT_INDIE")

CONFTEST = """
import sys
sys.path.insert(0, {broken!r})

import pytest
import conveyor
from conveyor_memory import MemoryConfig
from indie import IndieBackend, IndieConfig
from variants import INTACT, INTACT_INDIE, VARIANTS
from conveyor.testing import *  # below the top level, the equivalent of pytest_plugins

HERE = {here!r}
ONLY = {only!r}


def pytest_collection_modifyitems(config, items):
    # Only this folder's catcher class runs here (every conftest sees every item).
    if ONLY is not None:
        items[:] = [i for i in items if not (str(i.path).startswith(HERE) and f"::{{ONLY}}::" not in i.nodeid)]


@pytest.fixture
def conveyor_backend(conveyor_clock):
    factory = {{"INTACT": INTACT, "INTACT_INDIE": INTACT_INDIE}}.get({name!r}) or VARIANTS[{name!r}]
    if issubclass(factory, IndieBackend):
        return conveyor.Backend(factory(IndieConfig(clock=conveyor_clock)), name={name!r})
    return conveyor.Backend(factory(MemoryConfig(clock=conveyor_clock)), name={name!r})
"""

# A suite class expected to notice each variant (others may notice too).
CAUGHT_BY = {
    "LosesOnClaim": "TestBackend",
    "DeliversEarly": "TestBackend",
    "IgnoresPriority": "TestBackend",
    "AcceptsStaleToken": "TestAck",
    "DoubleDelivers": "TestBackend",
    "MiscountsVacuum": "TestVacuum",
    "IgnoresPage": "TestListTasks",
    "ResumesUncounted": "TestResumeAbandoned",
    "ReportsTwice": "TestCheckStatus",
    "LosesResults": "TestAck",
    "LeaksQueues": "TestMakeShared",
    "ClaimsWhatItLacks": "TestPushWeak",
} | {name: catcher for name, (_, catcher) in SEEDED.items()}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Run every folder once; each folder's FAILED/ERROR lines (and ``__out__``: the output)."""
    root = tmp_path_factory.mktemp("harness")
    (root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    for name in (*INTACTS, *VARIANTS):
        folder = root / name
        folder.mkdir()
        only = None if name in INTACTS else CAUGHT_BY[name]
        text = CONFTEST.format(broken=str(BROKEN), here=str(folder), only=only, name=name)
        (folder / "conftest.py").write_text(text)
    # The model is left out here: these runs show what the per-capability classes catch.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
         "-m", "not slow", "-k", "not TestModel", "-c", str(root / "pytest.ini"),
         "--rootdir", str(root), str(root)],
        cwd=root, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    lines: dict[str, list[str]] = {"__out__": [done.stdout + done.stderr]}
    for line in done.stdout.splitlines():
        found = re.match(r"(FAILED|ERROR) (\w+)/conftest\.py::", line)
        if found:
            lines.setdefault(found.group(2), []).append(line)
    return lines


def test_every_variant_has_an_expected_catcher() -> None:
    assert set(CAUGHT_BY) == set(VARIANTS)


@pytest.mark.parametrize("intact", INTACTS)
def test_the_intact_backend_passes_the_harness(harness: dict[str, list[str]], intact: str) -> None:
    out = harness["__out__"][0]
    assert f"{intact}/conftest.py" not in "".join(harness.get(intact, [])), out[-3000:]
    assert not harness.get(intact), harness[intact]
    assert re.search(r"\d+ passed", out), out[-3000:]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_suite_fails_a_broken_variant(harness: dict[str, list[str]], name: str) -> None:
    failed = harness.get(name, [])
    assert failed, f"the suite passed variant {name}"
    assert any(f"::{CAUGHT_BY[name]}::" in line for line in failed), failed
