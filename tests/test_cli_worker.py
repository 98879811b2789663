"""``conveyor worker``: runs until a signal, live line on a terminal, plain logs otherwise."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import clean_env, one_line_error
from cli_support import conveyor as run
from cli_support.terminal import in_terminal

HANDLERS = """
def double(n):
    return n * 2


def two_positional_only(a, b, c, /):
    return a
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(HANDLERS)
    return tmp_path


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_worker_runs_until_a_signal_then_stops_gracefully(project: Path, stop: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", "worker", "jobs:double", "-b", "memory://"],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # plain log lines: stderr is not a terminal
        assert " INFO worker " in first and "started" in first, first
        process.send_signal(stop)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "stopped: done 0 · failed 0" in rest
    assert "Traceback" not in rest


def test_burst_worker_on_a_terminal_shows_the_live_line(project: Path) -> None:
    status, output = in_terminal("-b", "memory://", "worker", "jobs:double", "--burst", cwd=project)
    assert status == 0, output
    assert "in flight" in output and "tasks/s" in output and "done 0" in output


def test_a_handler_with_an_unusable_signature_is_a_one_line_error(project: Path) -> None:
    result = run("-b", "memory://", "worker", "jobs:two_positional_only", "--burst", cwd=project)
    assert result.returncode == 1
    assert "cannot run jobs:two_positional_only" in one_line_error(result)
