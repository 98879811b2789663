"""Replies cut straight out of the pipelined connection's bytes as they arrive.

Why: redis-py reads each reply through several layers (its connection, its parser,
then one ``readline``/``readexactly`` of a stream reader per line), and on a loaded
two-core machine that client CPU is as much as the rest of a push. Here the
protocol object on the socket cuts every complete reply out of the bytes as they
arrive (often every reply of a batch in one go), and the caller takes them in
order. The values are the ones redis-py's own parsers give (bytes, int, list,
None; RESP3's map, set, double, boolean too), and an error reply is the exception
redis-py would raise, returned rather than raised so that the caller decides (an
error inside an array stays a value, as in redis-py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis._parsers import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError

__all__ = ["ReplyProtocol"]


class _Incomplete(Exception):
    """The buffer ends inside a reply: read more and parse it again from its start."""


class _Short(Exception):
    """The buffer must reach ``need`` bytes before the reply can end (see ``_end``)."""

    def __init__(self, need: int) -> None:
        self.need = need


class ReplyProtocol(asyncio.Protocol):
    """Replies cut out of the bytes as they arrive; ``read`` hands them out in order.

    Put on a connected transport with ``take_over``, in place of the stream reader
    redis-py connected it with, once its handshake is done.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        # Bytes the buffer must hold before the reply at its start can be complete
        # (0: none is known to be short). The buffer always starts at a reply.
        self._need = 0
        self._ready: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused: asyncio.Future[None] | None = None
        self.lost: Exception | None = None
        """Why the connection is gone (``None`` while it is up)."""
        self.transport: asyncio.WriteTransport | None = None

    @classmethod
    def take_over(cls, transport: asyncio.WriteTransport) -> ReplyProtocol:
        protocol = cls()
        protocol.transport = transport
        transport.set_protocol(protocol)
        return protocol

    def write(self, data: bytes) -> None:
        """Send ``data``; the connection's failure if it is gone already."""
        if self.lost is not None or self.transport is None:
            raise self.lost or RedisConnectionError("Not connected.")
        self.transport.write(data)

    @property
    def paused(self) -> bool:
        """The transport's write buffer is over its limit: ``drain`` before writing more."""
        return self._paused is not None

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its limit."""
        if self._paused is not None:
            await asyncio.shield(self._paused)
        if self.lost is not None:
            raise self.lost

    async def read(self) -> Any:
        """The next reply (an error reply as its exception, not raised)."""
        if not self._ready:
            if self.lost is not None:
                raise self.lost
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
            if not self._ready:
                raise self.lost or RedisConnectionError("Connection closed by server.")
        return self._ready.popleft()

    # --- asyncio.Protocol ----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        size = len(buf)
        if size < self._need:
            return
        pos = 0
        ready = self._ready
        while pos < size:
            if not self._need:
                try:
                    value, pos = _parse(buf, pos)
                    ready.append(value)
                    continue
                except _Incomplete:
                    pass
            # Not all here: find where it ends without copying anything, so that
            # a reply arriving in many pieces is parsed once, when it is whole.
            try:
                _end(buf, pos)
            except _Short as short:
                self._need = short.need - pos
                break
            self._need = 0
            value, pos = _parse(buf, pos)
            ready.append(value)
        if pos:
            del buf[:pos]
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(
            f"Connection lost: {exc}" if exc else "Connection closed by server."
        )
        self._wake()
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    def pause_writing(self) -> None:
        if self._paused is None:
            self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self._ready or self.lost):
            waiter.set_result(None)


def _error(text: bytes) -> ResponseError:
    """The exception redis-py raises for error reply ``text`` (``NoScriptError`` ...)."""
    error: ResponseError = BaseParser.parse_error(text.decode("utf-8", "replace"))  # type: ignore[no-untyped-call]
    return error


def _end(buf: bytearray, pos: int) -> int:
    """Where the reply starting at ``pos`` ends; ``_Short`` if the buffer ends first."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Short(len(buf) + 1)
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 36 or kind == 61 or kind == 33:  # $ = !: a length, then that many bytes
        size = int(line)
        if size < 0:
            return pos
        if len(buf) < pos + size + 2:
            raise _Short(pos + size + 2)
        return pos + size + 2
    if kind == 42 or kind == 126 or kind == 62 or kind == 37:  # * ~ > %: that many items
        count = int(line) * (2 if kind == 37 else 1)
        for _ in range(count):
            pos = _end(buf, pos)
    return pos


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """The reply starting at ``pos`` and where the next one starts."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 36 or kind == 61 or kind == 33:  # $ bulk, = verbatim, ! bulk error
        size = int(line)
        if size < 0:
            return None, pos
        stop = pos + size
        if len(buf) < stop + 2:
            raise _Incomplete
        data = bytes(buf[pos:stop])
        if kind == 61:
            data = data[4:]  # the "txt:" format prefix, as redis-py drops it
        elif kind == 33:
            return _error(data), stop + 2
        return data, stop + 2
    if kind == 58 or kind == 40:  # : integer, ( big number
        return int(line), pos
    if kind == 43:  # + simple string
        return line, pos
    if kind == 45:  # - error
        return _error(line), pos
    if kind == 42 or kind == 126 or kind == 62:  # * array, ~ set, > push
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 37:  # % map
        mapping = {}
        for _ in range(int(line)):
            key, pos = _parse(buf, pos)
            mapping[key], pos = _parse(buf, pos)
        return mapping, pos
    if kind == 95:  # _ null
        return None, pos
    if kind == 35:  # # boolean
        return line == b"t", pos
    if kind == 44:  # , double
        return float(line), pos
    raise InvalidResponse(f"Protocol error, got {bytes([kind])!r} as reply type byte")
