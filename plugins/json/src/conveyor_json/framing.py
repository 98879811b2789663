"""How records sit in the file: one line each, or one checked group per multi-record write.

A write of several records (a bulk push, a resume of many tasks) is framed as a
*group*: a header line ``{"op":"group","n":N,"len":L,"crc":C}`` and then the N
record lines, L bytes in all, whose CRC-32 is C. A reader applies a group only
when all L bytes are present and the checksum matches, so a write torn at any
byte (a process killed mid-write, a full disk, a power cut) is dropped whole:
a bulk push becomes visible entirely or not at all. A single record is a plain
line, which the torn-tail rule already makes all-or-nothing.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["GROUP_PREFIX", "MAX_GROUP", "Unit", "frame", "scan"]

GROUP_PREFIX = b'{"op":"group",'
MAX_GROUP = 256 << 20
"""The largest group body: a bulk push bigger than this is refused (push it in chunks,
each of them atomic), so a reader never holds more than this of one write in memory."""

_CHUNK = 1 << 20


class Unit(NamedTuple):
    """One record line or group found by ``scan``.

    ``lines``: the record lines (without newlines) when the unit is whole and
    checked; ``None`` otherwise. ``stop``: where the unit ends, ``None`` when
    the file ends first (a torn tail). ``problem``: why a unit is unusable.
    ``spans``: how many lines of the file it covers.
    """

    pos: int
    stop: int | None
    lines: list[bytes] | None
    problem: str | None
    spans: int


def frame(lines: list[bytes]) -> bytes:
    """The bytes of one write: the line alone, or a group of several (each ends in a newline)."""
    if len(lines) == 1:
        return lines[0]
    body = b"".join(lines)
    if len(body) > MAX_GROUP:
        raise ValueError(
            f"one write of {len(lines):,} records is {len(body):,} bytes, over the"
            f" {MAX_GROUP:,}-byte limit of an atomic group; push fewer tasks per call"
            " (each call stays all-or-nothing)"
        )
    head = b'{"op":"group","n":%d,"len":%d,"crc":%d}\n' % (len(lines), len(body), zlib.crc32(body))
    return head + body


def _group_header(line: bytes) -> tuple[int, int, int] | str:
    try:
        head = json.loads(line)
        n, length, crc = head["n"], head["len"], head["crc"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "an unreadable group header"
    if not all(type(v) is int and v >= 0 for v in (n, length, crc)) or n < 2:
        return "a group header with invalid counts"
    if length > MAX_GROUP:
        return f"a group longer than {MAX_GROUP:,} bytes"
    return n, length, crc


def scan(fd: int, start: int, end: int, max_line: int) -> Iterator[Unit]:
    """The units of the file between ``start`` and ``end``, in order; reads in bounded chunks.

    Stops after a unit the file ends inside of (``stop`` is ``None``).
    """
    buf = b""
    base = start  # the file offset of buf[0]
    cur = 0
    read_at = start

    def more(want: int = 0) -> bool:
        nonlocal buf, base, cur, read_at
        if read_at >= end:
            return False
        chunk = os.pread(fd, min(max(_CHUNK, want), end - read_at), read_at)
        if not chunk:
            return False
        read_at += len(chunk)
        buf = buf[cur:] + chunk
        base += cur
        cur = 0
        return True

    while True:
        nl = buf.find(b"\n", cur)
        while nl < 0:
            if len(buf) - cur > max_line:
                yield Unit(base + cur, None, None, f"a line longer than {max_line:,} bytes", 1)
                return
            searched = len(buf) - cur
            if not more():
                if cur < len(buf):
                    yield Unit(base + cur, None, None, None, 1)
                return
            nl = buf.find(b"\n", searched)
        pos = base + cur
        if not buf.startswith(GROUP_PREFIX, cur):
            line = buf[cur:nl]
            cur = nl + 1
            yield Unit(pos, base + cur, [line], None, 1)
            continue
        header = _group_header(buf[cur:nl])
        if isinstance(header, str):
            cur = nl + 1
            yield Unit(pos, base + cur, None, header, 1)
            continue
        n, length, crc = header
        head_len = nl + 1 - cur  # offsets relative to cur: more() moves the buffer
        while len(buf) - cur < head_len + length:
            if not more(head_len + length - (len(buf) - cur)):
                yield Unit(pos, None, None, None, 1)
                return
        body_at = cur + head_len
        body = buf[body_at : body_at + length]
        cur = body_at + length
        lines = body.split(b"\n")
        if zlib.crc32(body) != crc or lines[-1] != b"" or len(lines) != n + 1:
            yield Unit(pos, base + cur, None, "a group whose checksum does not match", len(lines))
            continue
        lines.pop()
        yield Unit(pos, base + cur, lines, None, n + 1)
