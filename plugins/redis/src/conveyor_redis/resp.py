"""Replies read straight off the pipelined connection's stream, a burst at a time.

Why: redis-py reads each reply through several layers (its connection, its parser,
then one ``readline``/``readexactly`` of the stream per line), about 20 us of
client CPU per call on a loaded two-core machine: as much as the rest of a push.
Here one ``read`` takes whatever the server has sent (often every reply of a
batch) and the replies are cut out of that buffer. The values are the ones
redis-py's own parsers give (bytes, int, list, None; RESP3's map, set, double,
boolean too), and an error reply is the exception redis-py would raise, returned
rather than raised so that the caller decides (an error inside an array stays a
value, as in redis-py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis._parsers import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError

__all__ = ["ReplyReader"]

CHUNK = 65536
"""Bytes asked of the stream per read; a reply larger than this takes several reads."""


class _Incomplete(Exception):
    """The buffer ends inside a reply: read more and parse it again from its start."""


class _Short(Exception):
    """The buffer must reach ``need`` bytes before the reply can end (see ``_end``)."""

    def __init__(self, need: int) -> None:
        self.need = need


class ReplyReader:
    """Replies, in order, from ``stream`` (the connection's ``asyncio.StreamReader``)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._pos = 0

    async def read(self) -> Any:
        """The next reply (an error reply as its exception, not raised)."""
        buf = self._buf
        if self._pos < len(buf):
            try:
                value, self._pos = _parse(buf, self._pos)
                return value
            except _Incomplete:
                pass
        # The reply is not all here. Read until it is, checking only where it ends
        # (no copying) so that a reply arriving in many pieces is parsed once.
        if self._pos:
            del buf[: self._pos]
            self._pos = 0
        need = len(buf) + 1
        while True:
            while len(buf) < need:
                more = await self._stream.read(max(CHUNK, need - len(buf)))
                if not more:
                    raise RedisConnectionError("Connection closed by server.")
                buf += more
            try:
                _end(buf, 0)
                break
            except _Short as short:
                need = max(short.need, len(buf) + 1)
        value, self._pos = _parse(buf, 0)
        return value


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
