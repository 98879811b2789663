"""Memory passes the whole suite, checked from the outside the way ``conveyor check`` runs it.

The suite itself is collected beside ``conftest.py``; these tests run it again
through ``conveyor.check`` (strict asyncio mode, its own generated conftest)
and hold memory to every capability it claims: none may be skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import conveyor
from conveyor import Capability
from conveyor.check import main, run_check


def test_every_capability_memory_has_passes() -> None:
    report = run_check("memory://")
    assert report.ok, [r for r in report.results if r.outcome == "fail"]
    claimed = conveyor.open("memory").capabilities
    # Every hook but migrate: a store in memory has no schema to bring up to date.
    assert claimed == frozenset(Capability) - {Capability.MIGRATE}, "memory implements every hook"
    for capability in Capability:
        if capability in (Capability.EXPOSE, Capability.MIGRATE):
            continue  # derived from the listing hooks, which have rows of their own
        row = report.result(capability.value)
        assert row.outcome == "pass", f"{capability.value}: {row}"
        assert row.skipped == 0, f"{capability.value}: {row.message}"
    assert report.result("backend").outcome == "pass"
    assert report.result("model").outcome in ("pass", "known")  # known: conveyor.testing.findings
    reopen = report.result("reopen")
    assert reopen.outcome == "skip" and "not reopenable" in reopen.message


def test_check_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-b", "memory://?queue=mail", "-k", "TestPush or TestGetQueue"]) == 0
    out = capsys.readouterr().out
    assert "push" in out and "get_queue" in out and "pass" in out
    assert "vacuum" not in out, "-k selects the tests that run"


def test_check_refuses_a_bad_url_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-b", "memory://?lease=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lease" in err and "Traceback" not in err


def test_a_failing_capability_is_a_failed_row_and_exit_status_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A lease far below the clock's resolution (a nanosecond at ~1.8e9 s) is expired the
    # moment it is granted: the suite must say so.
    report = run_check("memory://?lease_seconds=1e-9", select="TestResumeAbandoned or TestPush")
    row = report.result("resume_abandoned")
    assert not report.ok and row.outcome == "fail" and row.failed >= 1
    assert "a live lease was resumed" in row.message
    assert report.result("push").outcome == "pass"
    assert main(["-b", "memory://?lease_seconds=1e-9", "-k", "TestResumeAbandoned"]) == 1
    assert "FAILED: resume_abandoned" in capsys.readouterr().out


NO_CLOCK = """
import pytest
import conveyor

pytest_plugins = ["conveyor.testing"]


@pytest.fixture
def conveyor_clock():
    return None


@pytest.fixture
def conveyor_backend(conveyor_clock):
    return conveyor.open("memory", idle_wait=0.05)
"""


def test_a_backend_without_a_clock_skips_only_what_moves_time(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(NO_CLOCK)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "not slow"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    reasons = {line.split(": ", 1)[1] for line in skips}
    assert reasons == {
        "needs to move time: the conveyor_clock fixture returned None",
        "no conveyor_reopen fixture: the backend is not reopenable",
        "backend 'memory' lacks capability 'migrate' (no migrate hook);"
        " calling it raises UnsupportedCapability as it should",
    }, skips
    assert int(re.search(r"(\d+) passed", done.stdout).group(1)) >= 50  # type: ignore[union-attr]
