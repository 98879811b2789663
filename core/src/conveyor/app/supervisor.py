"""``--processes N``: N worker processes, each replaced when it dies, all stopped together.

The supervisor runs a command (``conveyor worker ...`` without ``--processes``)
N times. A child that dies while the supervisor is not stopping is started
again: at once if it had been up ``min_uptime`` seconds, otherwise after a
delay that doubles with each quick death in a row (up to ``backoff_max``),
so a worker that cannot start does not spin the machine. A child that exits
1 or 2 within ``fatal_within`` seconds of its start (a mistake in the command
or the configuration, which a restart cannot fix) stops them all. A child that exits 0 by itself
(``--burst`` found nothing more to do) is not replaced.

SIGINT and SIGTERM are passed on to every child, which stops gracefully;
a second one is passed on too (the children stop at once). Children run in
a process group of their own, so a Ctrl-C at a terminal reaches them only
through the supervisor (once, not twice); on Linux they are sent SIGTERM
if the supervisor itself dies.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Supervisor", "exit_status"]

logger = logging.getLogger("conveyor.supervisor")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_FATAL = (1, 2)
"""Exit statuses that mean the command or its configuration is wrong."""
_TICK = 0.05


def exit_status(returncode: int) -> int:
    """A child's ``returncode`` as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def _how(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class _Child:
    __slots__ = ("process", "slot", "started")

    def __init__(self, process: subprocess.Popen[bytes], slot: int) -> None:
        self.process = process
        self.started = time.monotonic()
        self.slot = slot


class Supervisor:
    """Runs ``command`` in ``processes`` child processes until they stop; see the module."""

    def __init__(
        self,
        command: Sequence[str],
        processes: int,
        *,
        env: Mapping[str, str] | None = None,
        min_uptime: float = 5.0,
        fatal_within: float = 30.0,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if type(processes) is not int or processes < 1:
            raise ValueError(f"processes must be a whole number of at least 1, not {processes!r}")
        self.command = list(command)
        self.processes = processes
        self.env = dict(env) if env is not None else None
        self.min_uptime = min_uptime
        self.fatal_within = fatal_within
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.children: dict[int, _Child] = {}
        self.restarts = 0
        self._signals = 0
        self._status = 0
        self._quick_deaths = 0
        self._due: list[tuple[float, int]] = []  # (when, slot) of children to start again
        self._wake = threading.Event()

    # --- children --------------------------------------------------------------------

    def _start(self, slot: int) -> None:
        process = subprocess.Popen(
            self.command,
            env=self.env,
            process_group=0,
            preexec_fn=_die_with_parent(),  # the supervisor runs no threads: fork is safe
        )
        self.children[process.pid] = _Child(process, slot)
        logger.info("supervisor: worker process %d started (slot %d)", process.pid, slot)

    def _send(self, signum: int) -> None:
        for child in list(self.children.values()):
            try:
                child.process.send_signal(signum)
            except ProcessLookupError:
                pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.warning(
                "supervisor: %s, stopping %d worker process(es) gracefully; %s again to stop"
                " them at once",
                name, len(self.children), name,
            )  # fmt: skip
        else:
            logger.warning("supervisor: %s again, stopping the worker processes at once", name)
        self._due.clear()
        self._send(signum)
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """Whether a signal (or a fatal child) asked everything to stop."""
        return self._signals > 0

    def _reap(self) -> None:
        for pid, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[pid]
            self._ended(child, code)

    def _ended(self, child: _Child, code: int) -> None:
        lived = time.monotonic() - child.started
        pid = child.process.pid
        if self.stopping:
            logger.info("supervisor: worker process %d %s", pid, _how(code))
            if code != 0 and self._status == 0:
                self._status = exit_status(code)
            return
        if code == 0:
            logger.info("supervisor: worker process %d finished (status 0)", pid)
            return
        if code in _FATAL and lived < self.fatal_within:
            logger.error(
                "supervisor: worker process %d %s %.1f s after it started; a restart cannot"
                " fix that, stopping all",
                pid, _how(code), lived,
            )  # fmt: skip
            self._status = code
            self._signals = max(self._signals, 1)
            self._due.clear()
            self._send(signal.SIGTERM)
            return
        if lived >= self.min_uptime:
            self._quick_deaths = 0
            delay = 0.0
        else:
            delay = min(self.backoff * 2**self._quick_deaths, self.backoff_max)
            self._quick_deaths += 1
        logger.warning(
            "supervisor: worker process %d %s after %.1f s; starting another in %.1f s",
            pid, _how(code), lived, delay,
        )  # fmt: skip
        self._due.append((time.monotonic() + delay, child.slot))

    # --- running -------------------------------------------------------------------------

    def run(self) -> int:
        """Start the children, keep them running, return the exit status once all stopped.

        0 when every child stopped cleanly (after a signal, or by finishing a
        burst); the status of the first child that did not, otherwise (128 + N
        for one killed by signal N).
        """
        previous = {s: signal.signal(s, self._on_signal) for s in _SIGNALS}
        try:
            for slot in range(self.processes):
                self._start(slot)
            while self.children or (self._due and not self.stopping):
                self._wake.wait(_TICK)
                self._wake.clear()
                self._reap()
                now = time.monotonic()
                for item in [d for d in self._due if d[0] <= now]:
                    self._due.remove(item)
                    if not self.stopping:
                        self.restarts += 1
                        self._start(item[1])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        logger.info("supervisor: all worker processes stopped (exit status %d)", self._status)
        return self._status
