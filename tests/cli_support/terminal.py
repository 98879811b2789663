"""Running ``conveyor`` with its output on a pseudo-terminal, as a person would see it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from cli_support import clean_env

__all__ = ["in_terminal"]


def in_terminal(*args: str, cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m conveyor.cli ARGS`` with stdout and stderr on a pty; return
    the exit status and everything written (escape sequences included)."""
    leader, follower = pty.openpty()
    env = clean_env({"TERM": "xterm", "COLUMNS": "120", "LINES": "40"})
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        status = process.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    return status, b"".join(chunks).decode("utf-8", "replace")
