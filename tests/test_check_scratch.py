"""``conveyor check`` never touches a store the user did not hand over as scratch.

A real JSON store with a pending task sits in the folder; every way a newcomer
might point ``check`` at it (configured, a fixed path, a placeholder the store
ignores) is refused with one line and exit 2, and the file's bytes are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor as run

from conveyor.check import CapabilityResult, CheckReport, print_report, run_check


@pytest.fixture
def real_store(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.json"
    pushed = run("-b", f"json://{path}", "push", '{"keep": "me"}', cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    (tmp_path / "pyproject.toml").write_text(f'[tool.conveyor]\nbackend = "json://{path}"\n')
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_check_never_uses_the_configured_store(real_store: Path) -> None:
    before = _digest(real_store)
    for env in ({}, {"CONVEYOR_BACKEND": f"json://{real_store}"}):
        result = run("check", cwd=real_store.parent, env=env)
        assert result.returncode == 2
        assert "-b" in _one_line(result.stderr) and "configured store" in result.stderr
    assert _digest(real_store) == before


@pytest.mark.parametrize("where", ["after", "before"])
def test_a_fixed_path_is_refused_with_the_fix(real_store: Path, where: str) -> None:
    before = _digest(real_store)
    url = f"json://{real_store}"
    args = ("check", "-b", url) if where == "after" else ("-b", url, "check")
    result = run(*args, cwd=real_store.parent)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "refusing" in line and "-b 'json://{tmp}/tasks.json'" in line
    assert _digest(real_store) == before


def test_a_store_that_already_holds_tasks_is_refused(real_store: Path) -> None:
    before = _digest(real_store)
    url = f"json://{real_store}?queue=check-{{unique}}"  # a placeholder the store ignores
    result = run("check", "-b", url, cwd=real_store.parent)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "already holds tasks" in line and "{tmp}" in line
    assert _digest(real_store) == before


def test_a_scratch_url_runs(tmp_path: Path) -> None:
    result = run("check", "-b", "json://{tmp}/tasks.json", "-k", "TestFetchById", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetch_by_id" in result.stdout


def test_a_passing_row_with_skips_names_the_reason() -> None:
    report = run_check("memory://", select="TestWorkerUse")
    row = report.result("as-worker")
    assert row.outcome == "pass" and row.skipped >= 1
    assert row.message.startswith("skipped: ") and "reopen" in row.message


def test_full_shows_the_whole_first_failure() -> None:
    row = CapabilityResult("ack", "fail", 3, 1, 0, "test_kill: boom", details="Trace\nE  boom\n")
    report = CheckReport("memory://", (row,))
    short, full = io.StringIO(), io.StringIO()
    print_report(report, file=short)
    print_report(report, file=full, full=True)
    assert "E  boom" not in short.getvalue() and "--full" in short.getvalue()
    assert "E  boom" in full.getvalue()
