"""Memory passes the whole suite, checked from the outside the way ``conveyor check`` runs it.

The suite itself is collected beside ``conftest.py``; these tests run it again
through ``conveyor.check`` (strict asyncio mode, its own generated conftest)
and hold memory to every capability it claims: none may be skipped.
"""

from __future__ import annotations

import pytest

import conveyor
from conveyor import Capability
from conveyor.check import main, run_check


def test_every_capability_memory_has_passes() -> None:
    report = run_check("memory://")
    assert report.ok, [r for r in report.results if r.outcome == "fail"]
    claimed = conveyor.open("memory").capabilities
    assert claimed == frozenset(Capability), "memory implements every hook"
    for capability in Capability:
        if capability is Capability.EXPOSE:
            continue  # derived from the listing hooks, which have rows of their own
        row = report.result(capability.value)
        assert row.outcome == "pass", f"{capability.value}: {row}"
        assert row.skipped == 0, f"{capability.value}: {row.message}"
    assert report.result("backend").outcome == "pass"
    assert report.result("model").outcome == "pass"
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
