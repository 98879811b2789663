"""Reading a pipe's source into its inner backend, a bounded number of items ahead."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from conveyor import Backend, ConveyorError

__all__ = ["Feeder", "PipeSourceError", "as_iterator"]

log = logging.getLogger("conveyor.pipe")


class PipeSourceError(ConveyorError):
    """The pipe's source raised (or its items could not be stored); the pipe stopped reading it.

    ``pushed`` is how many items had been pushed into the inner backend
    before; ``error`` is the exception the source (or the inner push) raised.
    """

    def __init__(self, message: str, *, pushed: int, error: BaseException) -> None:
        super().__init__(message)
        self.pushed = pushed
        self.error = error


def as_iterator(source: Any) -> Iterator[Any] | AsyncIterator[Any]:
    """``source`` as a sync or async iterator; ``TypeError`` if it is neither."""
    if isinstance(source, str | bytes | bytearray):
        raise TypeError(
            f"pipe source is a {type(source).__name__}, which iterates character by"
            " character; pass a list or another iterable of payloads"
        )
    if hasattr(source, "__aiter__"):
        iterator: AsyncIterator[Any] = source.__aiter__()
        return iterator
    try:
        sync: Iterator[Any] = iter(source)
    except TypeError:
        raise TypeError(
            f"pipe source must be an iterable or async iterable of payloads (or conveyor.Task),"
            f" not {type(source).__name__}"
        ) from None
    return sync


class Feeder:
    """Pushes source items into ``into`` while fewer than ``read_ahead`` wait undelivered.

    The poll side calls ``delivered()`` for each task it hands out and
    ``drained()`` when the inner backend has nothing ready, which gives the
    feeder room again. A sync source is read in batches on the event loop (it
    must not block); an async source one item at a time.
    """

    def __init__(self, source: Iterator[Any] | AsyncIterator[Any], into: Backend, read_ahead: int):
        self.into = into
        self.read_ahead = read_ahead
        self.pushed = 0
        self.rejected = 0
        self.error: PipeSourceError | None = None
        self.finished = False
        self._source = source
        self._outstanding = 0
        self._room: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pushed_all: asyncio.Event | None = None

    def start(self) -> None:
        """Start reading, once, on the running event loop."""
        if self._task is None and not self.finished:
            self._room = asyncio.Event()
            self._room.set()
            self._pushed_all = asyncio.Event()
            self._pushed_all.set()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="conveyor-pipe")

    def delivered(self) -> None:
        """A task was handed out: one more item may be read."""
        self._outstanding = max(0, self._outstanding - 1)
        if self._room is not None and self._outstanding < self.read_ahead:
            self._room.set()

    def drained(self) -> None:
        """The inner backend has nothing ready: whatever was pushed has been taken (or waits
        for its ``run_at``), so a full ``read_ahead`` may be read again."""
        self._outstanding = 0
        if self._room is not None:
            self._room.set()

    async def _wait_room(self) -> int:
        assert self._room is not None
        while self._outstanding >= self.read_ahead or self._closing:
            if self._closing:
                raise asyncio.CancelledError
            self._room.clear()
            await self._room.wait()
        return self.read_ahead - self._outstanding

    async def _run(self) -> None:
        try:
            if isinstance(self._source, AsyncIterator):
                await self._read_async(self._source)
            else:
                await self._read_sync(self._source)
        finally:
            self.finished = True

    async def _read_sync(self, source: Iterator[Any]) -> None:
        while True:
            room = await self._wait_room()
            batch: list[Any] = []
            failure: Exception | None = None
            ended = False
            try:
                for _ in range(room):
                    batch.append(next(source))
            except StopIteration:
                ended = True
            except Exception as exc:
                failure = exc
            if batch and not await self._push(batch):
                return
            if failure is not None:
                self._fail(failure, "the source raised")
                return
            if ended:
                log.info("pipe source ended after %d item(s) pushed", self.pushed)
                return

    async def _read_async(self, source: AsyncIterator[Any]) -> None:
        while True:
            await self._wait_room()
            try:
                item = await anext(source)
            except StopAsyncIteration:
                log.info("pipe source ended after %d item(s) pushed", self.pushed)
                return
            except Exception as exc:
                self._fail(exc, "the source raised")
                return
            if not await self._push([item]):
                return

    async def _push(self, batch: list[Any]) -> bool:
        """Push ``batch`` (finished even if the pipe closes meanwhile: read items are not
        dropped); an item that cannot be encoded is skipped and logged, alone."""
        assert self._pushed_all is not None
        self._pushed_all.clear()
        try:
            return await self._push_batch(batch)
        finally:
            self._pushed_all.set()

    async def _push_batch(self, batch: list[Any]) -> bool:
        try:
            stored = len(await self.into.push_many(batch))
        except ValueError:
            stored = 0
            for item in batch:
                try:
                    stored += len(await self.into.push_many([item]))
                except ValueError as exc:
                    self.rejected += 1
                    log.error(
                        "pipe skipped source item %d: it cannot be stored: %s",
                        self.pushed + stored + self.rejected,
                        exc,
                    )
                except Exception as exc:
                    self._fail(exc, f"pushing into {self.into.name!r} failed")
                    return False
        except Exception as exc:
            self._fail(exc, f"pushing into {self.into.name!r} failed")
            return False
        self.pushed += stored
        self._outstanding += stored
        return True

    def _fail(self, exc: Exception, what: str) -> None:
        self.error = PipeSourceError(
            f"pipe stopped reading its source: {what} ({type(exc).__name__}: {exc})"
            f" after {self.pushed} item(s) were pushed into {self.into.name!r}",
            pushed=self.pushed,
            error=exc,
        )
        log.error("%s", self.error)

    async def aclose(self) -> None:
        """Stop reading and close the source if it is a generator."""
        self.finished = True
        self._closing = True
        if self._task is not None and not self._task.done():
            if self._pushed_all is not None and not self._pushed_all.is_set():
                await self._pushed_all.wait()  # a push under way completes first
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if inspect.isasyncgen(self._source):
            await self._source.aclose()
        elif inspect.isgenerator(self._source):
            self._source.close()
