"""``conveyor check`` hands its arguments to ``conveyor.check`` and keeps its exit status."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor as run


def test_check_runs_the_suite_against_the_backend_given_before_the_command(
    tmp_path: Path,
) -> None:
    result = run("-b", "memory://", "check", "-k", "TestFetchById", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "conveyor check memory://" in result.stdout
    fetch = next(line for line in result.stdout.splitlines() if "fetch_by_id" in line)
    assert "pass" in fetch


def test_check_help_is_the_suites_own(tmp_path: Path) -> None:
    result = run("check", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: conveyor check" in result.stdout and "--examples" in result.stdout
