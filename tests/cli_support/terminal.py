"""Running ``conveyor`` on a pseudo-terminal, as a person would see it.

``in_terminal`` captures everything written (escape sequences included);
``Terminal`` also feeds it through ``pyte``, a VT100 emulator, so a test reads the
screen itself: what is on which line at a given width, after every cursor move.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pyte

from cli_support import clean_env

__all__ = ["in_terminal", "Terminal"]


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


def _take_terminal() -> None:
    # In the child, after setsid: the pty on stdin becomes its controlling
    # terminal, so Ctrl-C typed on it is a SIGINT to this process group.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``python -m conveyor.cli ARGS`` on a ``columns`` x ``lines`` terminal that is its
    stdin (its controlling terminal), stdout and stderr."""

    def __init__(
        self,
        *args: str,
        cwd: Path,
        columns: int = 80,
        lines: int = 200,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        environment = clean_env({"TERM": "xterm", **(env or {})})
        for name in ("NO_COLOR", "COLUMNS", "LINES"):
            environment.pop(name, None)  # the program must read the terminal's own size
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli", *args],
            cwd=cwd,
            env=environment,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            start_new_session=True,
            preexec_fn=_take_terminal,  # before exec, after setsid (start_new_session)
        )
        os.close(follower)
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        self.closed = False

    def pump(self, wait: float = 0.05) -> bool:
        """Read what is written within ``wait`` seconds onto the screen; ``False`` once
        the terminal is closed."""
        if self.closed or self.leader < 0:
            return False
        ready, _, _ = select.select([self.leader], [], [], wait)
        if not ready:
            return True
        try:
            data = os.read(self.leader, 65536)
        except OSError:  # EIO: every writer closed the terminal
            data = b""
        if not data:
            self.closed = True
            return False
        self.raw += data
        self.stream.feed(data)
        return True

    def lines(self) -> list[str]:
        """The screen, each line without trailing spaces, trailing blank lines dropped."""
        shown = [line.rstrip() for line in self.screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return shown

    def text(self) -> str:
        """The screen as one string."""
        return "\n".join(self.lines())

    def wait_for(
        self,
        ready: Callable[[Terminal], bool],
        timeout: float = 30,
        each: Callable[[], None] = lambda: None,
    ) -> None:
        """Pump until ``ready(self)``, calling ``each`` after every read; fail on timeout."""
        deadline = time.monotonic() + timeout
        while not ready(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen shows:\n{self.text()}")
            if not self.pump() and not ready(self):
                raise AssertionError(f"the terminal closed; the screen shows:\n{self.text()}")
            each()

    def type(self, keys: bytes) -> None:
        """Type ``keys`` on the terminal (``b"\\x03"`` is Ctrl-C)."""
        os.write(self.leader, keys)

    def finish(self, timeout: float = 30, each: Callable[[], None] = lambda: None) -> int:
        """Read until the program exits and its output is drained; its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pump(0.1):
            each()
            if self.process.poll() is not None and not select.select([self.leader], [], [], 0.1)[0]:
                break
        try:
            return self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            self.close()

    def close(self) -> None:
        """Kill the program if it still runs and release the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.leader >= 0:
            os.close(self.leader)
            self.leader = -1

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
