"""Helpers for the CLI tests: run ``conveyor`` in a subprocess, fake installed plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["Result", "conveyor", "clean_env"]

Result = subprocess.CompletedProcess[str]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus any configured backend, plus ``extra``; colour off."""
    env = {k: v for k, v in os.environ.items() if k != "CONVEYOR_BACKEND"}
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def conveyor(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> Result:
    """Run ``python -m conveyor.cli ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", *args],
        cwd=cwd,
        env=clean_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(result: Result) -> str:
    """The single stderr line of a failed run (asserting it is one line and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("conveyor: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


__all__ += ["one_line_error"]
