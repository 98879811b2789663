"""``conveyor push --from FILE.jsonl``: many tasks, one JSON payload per line.

The input is read line by line (each at most ``max_line_bytes``) and pushed in
chunks; each chunk is parsed completely before any of it is pushed and is then
stored all or nothing. A bad line therefore stops the run with the chunks
before it stored and nothing from its own chunk.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
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

from conveyor.backend import PUSH_CHUNK
from conveyor.capability import Capability
from conveyor.cli.errors import INTERRUPTED, CliError, status_of
from conveyor.cli.output import stderr
from conveyor.cli.payload import parse_json
from conveyor.cli.session import opened
from conveyor.errors import ConveyorError, PayloadError

__all__ = ["Chunk", "MAX_LINE_BYTES", "MAX_LINE_LIMIT", "read_chunks", "push_file"]

MAX_LINE_BYTES = 1 << 20
"""Default longest accepted line (1 MiB): a longer one is an error, never read whole."""

MAX_LINE_LIMIT = 1 << 30
"""The most ``--max-line-bytes`` may be (1 GiB): a line is held in memory whole."""


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
    bar = Progress(
        TextColumn("pushing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[count]:,} tasks"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bar.add_task("push", total=total, count=0, rate="")
    return bar


def push_file(
    target: str | None,
    path: str,
    *,
    options: dict[str, Any],
    max_line: int = MAX_LINE_BYTES,
    chunk: int = PUSH_CHUNK,
) -> int:
    """Push every payload of ``path`` (``-``: stdin) to the backend at ``target``;
    return how many were pushed.

    Lines are read between event-loop runs, never inside one: a blocking read of
    a terminal inside the loop would hold back the first Ctrl-C until the next line.
    """
    stream, source, total = _open(path)
    state = _Progress()
    try:
        with asyncio.Runner() as runner:
            session = opened(target, Capability.PUSH)
            backend = runner.run(session.__aenter__())

            def send(payloads: list[Any]) -> None:
                runner.run(backend.push_many(payloads, **options))

            try:
                with _progress(total) as bar:
                    for part in read_chunks(stream, source, chunk, max_line):
                        state.push(part, send)
                        if bar is not None:
                            state.show(bar, part)
            except BaseException as exc:
                if not runner.run(session.__aexit__(type(exc), exc, exc.__traceback__)):
                    raise
            else:
                runner.run(session.__aexit__(None, None, None))
    except BadLine as exc:
        raise CliError(f"{exc.message}; {state.summary()}") from None
    except KeyboardInterrupt:
        raise CliError(f"interrupted; {state.summary()}", INTERRUPTED) from None
    except (CliError, ConveyorError) as exc:
        if state.pushed == 0 and state.sending is None:
            raise  # nothing was sent: the error alone says it
        if isinstance(exc, PayloadError):
            state.sending = None  # a chunk is encoded whole before any of it is stored
        message = exc.message if isinstance(exc, CliError) else str(exc)
        raise CliError(f"{message.rstrip('.')}; {state.summary()}", status_of(exc)) from exc
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return state.pushed


@attrs.define
class _Progress:
    """How far a bulk push got, for the bar and for the message when it stops early."""

    pushed: int = 0
    through: int = 0  # the last line whose chunk is stored
    sending: tuple[int, int] | None = None  # the lines of a chunk being pushed

    def push(self, part: Chunk, send: Callable[[list[Any]], None]) -> None:
        """Store ``part`` with ``send`` and count it."""
        if part.payloads:
            self.sending = (part.first_line, part.last_line)
            send(part.payloads)
            self.sending = None
            self.pushed += len(part.payloads)
        self.through = part.last_line

    def show(self, bar: Progress, part: Chunk) -> None:
        """Advance the progress bar past ``part``."""
        elapsed = bar.tasks[0].elapsed or 0.0
        rate = f"{self.pushed / elapsed:,.0f}/s" if elapsed > 0 else ""
        bar.update(bar.task_ids[0], advance=part.size, count=self.pushed, rate=rate)

    def summary(self) -> str:
        """What was stored, in lines of the input."""
        if self.sending is not None:
            first, last = self.sending
            before = (
                f"the {self.pushed} tasks of lines 1-{self.through} were pushed"
                if self.pushed
                else "no earlier line was pushed"
            )
            return (
                f"{before}; lines {first}-{last} were being pushed and may or may not be"
                f" stored; nothing after line {last} was"
            )
        if self.pushed == 0:
            return "nothing was pushed"
        return (
            f"the {self.pushed} tasks of lines 1-{self.through} were pushed,"
            f" nothing from line {self.through + 1} on"
        )
