"""The conformance suite is worth what it catches: every broken variant must fail it.

Each variant (``tests/broken/variants.py``) runs the whole suite in a pytest
subprocess of its own, with a conftest exactly as a third-party author would
write it, in pytest-asyncio's strict mode. The intact backend must pass the
same harness, so a failure is the variant's, not the harness's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).resolve().parent / "broken"
sys.path.insert(0, str(BROKEN))
from variants import VARIANTS  # noqa: E402

CONFTEST = """
import sys
sys.path.insert(0, {broken!r})

import pytest
import conveyor
from conveyor_memory import MemoryConfig
from variants import INTACT, VARIANTS

pytest_plugins = ["conveyor.testing"]


@pytest.fixture
def conveyor_backend(conveyor_clock):
    factory = INTACT if {name!r} == "INTACT" else VARIANTS[{name!r}]
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
}


def run_suite(tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST.format(broken=str(BROKEN), name=name))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    # The model is left out here: these runs show what the per-capability classes catch.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
         "-m", "not slow", "-k", "not TestModel", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_variant_has_an_expected_catcher() -> None:
    assert set(CAUGHT_BY) == set(VARIANTS)


def test_the_intact_backend_passes_the_harness(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "INTACT")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_suite_fails_a_broken_variant(tmp_path: Path, name: str) -> None:
    done = run_suite(tmp_path, name)
    out = done.stdout
    assert done.returncode == 1, f"the suite passed variant {name}:\n{out[-3000:]}{done.stderr}"
    failed = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert failed, out[-3000:]
    assert any(f"::{CAUGHT_BY[name]}::" in line for line in failed), failed
