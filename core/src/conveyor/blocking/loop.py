"""The private event loop behind ``conveyor.blocking``: one per process, in a daemon thread.

anyio runs the loop (``anyio.run`` with a ``BlockingPortal`` open in it), so its
start, its task group and its stop are anyio's. Calls from other threads are
handed to the loop with ``asyncio.run_coroutine_threadsafe``: one crossing each
way. (``BlockingPortal.call`` first waits for the loop to *spawn* the call and
then for its result, two round trips, which is what kept a sync Redis push at
1.5-1.9x the async one.)

The thread is a daemon, started by hand rather than by
``anyio.from_thread.start_blocking_portal``: that runs the loop in a
``ThreadPoolExecutor``, whose exit hook joins its threads before ``atexit``
runs, so a process that never closed its portal would hang on the way out.

Fork: a child inherits the parent's loop object and sockets but not its thread.
``os.register_at_fork`` drops the child's reference to them (without closing
anything: the parent still uses those connections) and the next call in the
child starts a loop of its own. Exit: ``close_at_exit`` closes every backend
still open and stops the loop, bounded in time.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread  # noqa: F401 - its exit hook must be registered before ours
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

__all__ = ["LoopThread", "current", "running", "track", "EXIT_TIMEOUT"]

T = TypeVar("T")

EXIT_TIMEOUT = 5.0
"""Seconds the interpreter's exit may spend closing backends and stopping the loop."""


class _Resettable(Protocol):
    def _forget(self) -> None: ...
    def _close_quietly(self, timeout: float) -> None: ...


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _discard(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will never run (no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


class LoopThread:
    """An event loop run by anyio in a daemon thread, and a way to run coroutines on it."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.portal: BlockingPortal | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._main, name="conveyor-blocking", daemon=True)
        self.thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError("conveyor.blocking could not start its event loop") from (
                self._failure
            )

    def _main(self) -> None:
        try:
            anyio.run(self._serve)
        except BaseException as exc:  # reported to the thread that started us
            self._failure = exc
        finally:
            self.loop = None
            self._ready.set()

    async def _serve(self) -> None:
        async with BlockingPortal() as portal:
            self.loop = asyncio.get_running_loop()
            self.portal = portal
            self._ready.set()
            await portal.sleep_until_stopped()

    @property
    def running(self) -> bool:
        """Whether the loop is still serving calls."""
        return self.loop is not None and self.thread.is_alive()

    def run(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``awaitable`` on the loop and return its result, from any other thread."""
        loop = self.loop
        if loop is None or not self.thread.is_alive():
            _discard(awaitable)
            raise RuntimeError("conveyor.blocking's event loop has stopped (interpreter exit?)")
        if threading.get_ident() == self.thread.ident:
            _discard(awaitable)
            raise RuntimeError(
                "a conveyor.blocking method was called from inside its own event loop (from"
                " async code it runs): that would wait for itself for ever; await the async"
                " Backend there instead"
            )
        future: Future[T] = asyncio.run_coroutine_threadsafe(_await(awaitable), loop)
        try:
            return future.result(timeout)
        except BaseException:
            # Ctrl-C or a timeout in the caller: the call is abandoned, not left running.
            future.cancel()
            raise

    def stop(self, timeout: float) -> None:
        """Stop the loop (tasks still running are cancelled) and wait for its thread."""
        portal, loop = self.portal, self.loop
        if portal is not None and loop is not None and self.thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(portal.stop(cancel_remaining=True), loop)
            # Already stopping, or stuck: the join below is bounded too.
            with contextlib.suppress(Exception):
                future.result(timeout)
        self.thread.join(timeout)


_lock = threading.Lock()
_current: LoopThread | None = None
_live: weakref.WeakSet[_Resettable] = weakref.WeakSet()
_abandoned: list[object] = []
"""What a forked child inherited: kept referenced so that nothing finalises (and so
closes or flushes) the parent's loop or connections from the child."""


def current() -> LoopThread:
    """This process's loop, started on first use (and again in a forked child)."""
    global _current
    loop_thread = _current
    if loop_thread is not None and loop_thread.running:
        return loop_thread
    with _lock:
        if _current is None or not _current.running:
            _current = LoopThread()
        return _current


def running() -> LoopThread | None:
    """This process's loop if it is running (never starts one)."""
    loop_thread = _current
    return loop_thread if loop_thread is not None and loop_thread.running else None


def track(owner: _Resettable) -> None:
    """Have ``owner`` forgotten in a forked child and closed at interpreter exit."""
    _live.add(owner)


def _after_fork_in_child() -> None:
    global _current, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    if _current is not None:
        _abandoned.append(_current)
        _current = None
    for owner in list(_live):
        owner._forget()


def close_at_exit(timeout: float = EXIT_TIMEOUT) -> None:
    """Close every open blocking backend, then stop the loop; at most ``timeout`` seconds."""
    global _current
    for owner in list(_live):
        owner._close_quietly(timeout)
    loop_thread = running()
    if loop_thread is not None:
        loop_thread.stop(timeout)
    _current = None


def _register() -> None:
    os.register_at_fork(after_in_child=_after_fork_in_child)
    # Before threading's own exit hooks (which stop the executors backends use to
    # sync files), where that private hook exists; atexit otherwise.
    register: Callable[[Callable[[], None]], None] | None = getattr(
        threading, "_register_atexit", None
    )
    if register is not None:
        register(close_at_exit)
    else:  # pragma: no cover - every CPython we support has it
        atexit.register(close_at_exit)


_register()
