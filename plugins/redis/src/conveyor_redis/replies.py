"""The pipelined connection's protocol object: replies taken out of its bytes as they arrive.

Why: redis-py reads each reply through several layers (its connection, its parser,
then a stream reader's ``read`` per chunk and a waiter per read), and on a loaded
two-core machine that client CPU is as much as the rest of a push. Here the
protocol object on the socket hands every chunk to a ``hiredis.Reader`` (the C
parser redis-py itself uses when hiredis is installed), takes every complete reply
out of it at once (often every reply of a batch), and the caller reads them in
order. Values and error classes are redis-py's with hiredis: an error reply is the
exception redis-py would raise (``BaseParser.parse_error``: ``NoScriptError``, ...),
returned rather than raised so that the caller decides (an error inside an array
stays a value, as in redis-py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis._parsers import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse

__all__ = ["ReplyProtocol"]

# What ``gets`` returns while the buffered bytes end inside a reply: hiredis's
# default (False) is also RESP3's false.
_INCOMPLETE: Any = object()


class ReplyProtocol(asyncio.Protocol):
    """Replies cut out of the bytes as they arrive; ``read`` hands them out in order.

    Put on a connected transport with ``take_over``, in place of the stream reader
    redis-py connected it with, once its handshake is done.
    """

    def __init__(self) -> None:
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse,
            replyError=BaseParser.parse_error,
            notEnoughData=_INCOMPLETE,
        )
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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Only when connected with this protocol (tests); ``take_over`` sets it itself.
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport

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
        reader, ready = self._reader, self._ready
        reader.feed(data)
        try:
            reply = reader.gets()
            while reply is not _INCOMPLETE:
                ready.append(reply)
                reply = reader.gets()
        except InvalidResponse as exc:
            # Not RESP: nothing after it can be matched to a command. The replies
            # before it stand; every later read fails as the connection's loss.
            self.lost = RedisConnectionError(f"Connection lost: {exc}")
            self.lost.__cause__ = exc
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
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
