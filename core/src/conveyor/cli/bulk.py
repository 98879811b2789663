"""``conveyor push --from FILE.jsonl``: many tasks, one JSON payload per line.

The input is read line by line (each at most ``max_line_bytes``) and pushed in
chunks; each chunk is parsed completely before any of it is pushed and is then
stored all or nothing. A bad line therefore stops the run with the chunks
before it stored and nothing from its own chunk.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any

import attrs
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from conveyor.backend import PUSH_CHUNK, Backend
from conveyor.cli.errors import CliError
from conveyor.cli.output import stderr
from conveyor.cli.payload import parse_json

__all__ = ["Chunk", "MAX_LINE_BYTES", "read_chunks", "push_file"]

MAX_LINE_BYTES = 1 << 20
"""Default longest accepted line (1 MiB): a longer one is an error, never read whole."""


@attrs.frozen
class Chunk:
    """Payloads parsed from consecutive lines, with where they came from."""

    payloads: list[Any]
    first_line: int
    last_line: int
    size: int


class BadLine(CliError):
    """A line that is not one JSON payload."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def read_chunks(stream: IO[bytes], source: str, chunk: int, max_line: int) -> Iterator[Chunk]:
    """Parse ``stream`` into chunks of up to ``chunk`` payloads; blank lines are skipped.

    Raises ``BadLine`` (a ``CliError``) naming the line for invalid UTF-8, invalid
    JSON, or a line longer than ``max_line`` bytes, before yielding its chunk.
    """
    number = 0
    payloads: list[Any] = []
    first = 1
    size = 0
    while True:
        raw = stream.readline(max_line + 1)
        if not raw:
            break
        number += 1
        size += len(raw)
        content = raw[:-1] if raw.endswith(b"\n") else raw
        if len(content) > max_line:
            raise BadLine(
                f"{source} line {number} is longer than {max_line} bytes;"
                " raise --max-line-bytes if such payloads are intended",
                number,
            )
        if number == 1 and content.startswith(b"\xef\xbb\xbf"):
            content = content[3:]  # a UTF-8 byte-order mark some editors write
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadLine(
                f"{source} line {number} is not UTF-8 (byte {exc.start + 1});"
                " save the file as UTF-8",
                number,
            ) from None
        if not text.strip():
            continue
        try:
            payloads.append(parse_json(text, f"{source} line {number}"))
        except CliError as exc:
            raise BadLine(exc.message, number) from None
        if len(payloads) >= chunk:
            yield Chunk(payloads, first, number, size)
            payloads, first, size = [], number + 1, 0
    if payloads or size:
        yield Chunk(payloads, first, number, size)


def _open(path: str) -> tuple[IO[bytes], str, int | None]:
    if path == "-":
        return sys.stdin.buffer, "stdin", None
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by push_file
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        size = os.fstat(stream.fileno()).st_size or None
    except OSError:
        size = None
    return stream, path, size


def _progress(total: int | None) -> AbstractContextManager[Progress | None]:
    console = stderr()
    if not console.is_terminal:
        return nullcontext(None)
    return Progress(
        TextColumn("pushing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[count]:,} tasks"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


async def push_file(
    backend: Backend,
    path: str,
    *,
    options: dict[str, Any],
    max_line: int = MAX_LINE_BYTES,
    chunk: int = PUSH_CHUNK,
) -> int:
    """Push every payload of ``path`` (``-``: stdin); return how many were pushed."""
    stream, source, total = _open(path)
    pushed = 0
    done_through = 0  # the last line whose chunk is stored
    try:
        with _progress(total) as progress:
            bar = None
            if progress is not None:
                bar = progress.add_task("push", total=total, count=0, rate="")
            try:
                for part in read_chunks(stream, source, chunk, max_line):
                    if part.payloads:
                        await backend.push_many(part.payloads, **options)
                        pushed += len(part.payloads)
                    done_through = part.last_line
                    if progress is not None and bar is not None:
                        elapsed = progress.tasks[0].elapsed or 0.0
                        rate = f"{pushed / elapsed:,.0f}/s" if elapsed > 0 else ""
                        progress.update(bar, advance=part.size, count=pushed, rate=rate)
            except BadLine as exc:
                raise CliError(_stopped(exc, pushed, done_through)) from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return pushed


def _stopped(exc: BadLine, pushed: int, done_through: int) -> str:
    if pushed == 0:
        return f"{exc.message}; nothing was pushed"
    return (
        f"{exc.message}; the {pushed} tasks of lines 1-{done_through} were pushed,"
        f" nothing from line {done_through + 1} on"
    )
