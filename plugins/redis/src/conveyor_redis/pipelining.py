"""Auto-pipelining: one connection, and every command issued while another is in
flight goes out with the next batch, in one write.

Why: redis-py's client takes a pooled connection, arms a timeout and parses one
reply per command; on a loaded two-core machine that costs more than the server
spends running the whole push script. Here a caller that finds the connection
idle sends its command and reads its reply itself (no task, no hand-off); callers
arriving meanwhile (the lanes of a worker acking together) queue up and share the
next write and the next read burst. Replies come back in the order commands were
sent, so each is matched to its caller by position.

Timeouts are kept by one timer per ``timeout`` seconds of traffic rather than one
per command: a batch unanswered that long is abandoned, its callers get
``TimeoutError`` and the connection is dropped (the next call reconnects).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["AutoPipeline"]

_Item = tuple[bytes, "asyncio.Future[Any]"]


class AutoPipeline:
    """Commands over one dedicated connection, batched while one is in flight."""

    def __init__(self, pool: ConnectionPool, script: str, timeout: float) -> None:
        kwargs = dict(pool.connection_kwargs)
        # Timeouts are this class's (one timer, not one per read); health checks are
        # the traffic itself.
        kwargs.update(socket_timeout=None, health_check_interval=0)
        self._kwargs = kwargs
        # Typed loosely: redis-py leaves connect() and the reply shapes unannotated.
        self._connection_class: Any = pool.connection_class
        self._script = script
        self.sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        self.timeout = timeout
        self._conn: Any = None
        self._queue: list[_Item] = []
        self._busy = False
        self._reader: asyncio.Task[Any] | None = None
        self._sent_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False
        self._drainer: asyncio.Task[None] | None = None
        self._heads: dict[tuple[str, str], bytes] = {}

    # --- calls ------------------------------------------------------------------------

    async def script(self, op: str, base: str, *args: Any) -> Any:
        """Run ``op`` of the Lua script, ARGV = op, base, args (no KEYS); loaded if missing."""
        return await self._send(self._script_command(op, base, args))

    def submit_script(self, op: str, base: str, *args: Any) -> asyncio.Future[Any]:
        """``script`` without waiting: the reply arrives on the returned future."""
        return self._submit(self._script_command(op, base, args))

    async def execute(self, *command: Any) -> Any:
        """Send one command and return its reply (a ``ResponseError`` reply is raised)."""
        return await self._send(pack(command))

    def _script_command(self, op: str, base: str, args: Sequence[Any]) -> bytes:
        head = self._heads.get((op, base))
        if head is None:
            # The unchanging part of every call of this operation, packed once.
            head = self._heads[op, base] = pack_arguments(("EVALSHA", self.sha, 0, op, base))
        return b"*%d\r\n%b%b" % (len(args) + 5, head, pack_arguments(args))

    async def _send(self, command: bytes) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if not self._busy:
            # Nobody is sending: this caller does, with whatever queued up meanwhile.
            self._busy = True
            try:
                await self._flush(loop)
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    future.exception()  # failed with the batch; this caller is gone
                future.cancel()
                raise
            finally:
                self._continue(loop)
        return await future

    def _submit(self, command: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if not self._busy:
            self._busy = True
            self._continue(loop)
        return future

    async def close(self) -> None:
        """Drop the connection; queued callers get ``ConnectionError``."""
        if self._drainer is not None:
            self._drainer.cancel()
        queued, self._queue = self._queue, []
        _fail(queued, RedisConnectionError("the Redis backend was closed"))
        await self._drop()

    # --- the sending side -------------------------------------------------------------

    def _continue(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a batch: hand what queued up meanwhile to a task, or go idle."""
        if self._queue:
            self._drainer = loop.create_task(self._drain(loop))
        else:
            self._busy = False

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._queue:
                await self._flush(loop)
        finally:
            self._drainer = None
            self._busy = False
            if self._queue:  # cancelled with callers still waiting
                self._busy = True
                self._continue(loop)

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send everything queued in one write and hand each reply to its caller."""
        batch, self._queue = self._queue, []
        missing: list[_Item] = []
        try:
            # Watched from here on: a server that accepts connections but never
            # answers (stopped, overloaded) holds up the handshake as much as a reply.
            self._reader = asyncio.current_task()
            self._sent_at = loop.time()
            if self._timer is None:
                self._timer = loop.call_at(self._sent_at + self.timeout, self._check, loop)
            conn = self._conn
            if conn is None or not conn.is_connected:
                conn = self._conn = self._connection_class(**self._kwargs)
                await conn.connect()
            await conn.send_packed_command([c for c, _ in batch], check_health=False)
            for item in batch:
                try:
                    reply = await conn.read_response()
                except NoScriptError:
                    missing.append(item)  # not run: sent again once the script is loaded
                    continue
                except ResponseError as exc:
                    if not item[1].done():
                        item[1].set_exception(exc)
                    continue
                if not item[1].done():
                    item[1].set_result(reply)
            if missing:
                await conn.send_command("SCRIPT", "LOAD", self._script, check_health=False)
                await conn.read_response()
                self._queue[:0] = missing
        except asyncio.CancelledError:
            expired, self._expired = self._expired, False
            task = asyncio.current_task()
            if expired and task is not None:
                task.uncancel()
                _fail(batch, RedisTimeoutError(f"no reply from redis within {self.timeout} s"))
                await self._drop()
                return
            _fail(batch, RedisConnectionError("a batch was interrupted by cancellation"))
            await self._drop()
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            _fail(batch, exc if not isinstance(exc, OSError) else RedisConnectionError(str(exc)))
            await self._drop()
        finally:
            self._sent_at = None
            self._reader = None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: abandon a batch unanswered for ``timeout``; re-arm while busy."""
        self._timer = None
        sent = self._sent_at
        if sent is None:
            return
        due = sent + self.timeout
        if loop.time() >= due and self._reader is not None:
            self._expired = True
            self._reader.cancel()
        else:
            self._timer = loop.call_at(due, self._check, loop)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.disconnect(nowait=True)
            except Exception:  # noqa: S110 - dropping a broken connection; nothing to report
                pass


def pack(command: Sequence[Any]) -> bytes:
    """``command`` in the Redis protocol: an array of bulk strings.

    Written here rather than taken from redis-py, whose general encoder (a type
    check chain and a buffer rebuilt per argument) was the largest client-side
    cost of a push in profiles; the arguments here are only bytes, text and ints.
    """
    return b"*%d\r\n%b" % (len(command), pack_arguments(command))


def pack_arguments(args: Iterable[Any]) -> bytes:
    """The bulk strings of ``args``, without the array header."""
    out: list[bytes] = []
    add = out.append
    for arg in args:
        if type(arg) is bytes:
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif type(arg) is int:
            data = b"%d" % arg
        elif isinstance(arg, (bytes, bytearray, memoryview)):
            data = bytes(arg)
        else:
            raise TypeError(f"cannot send {type(arg).__name__} {arg!r} to redis")
        add(b"$%d\r\n" % len(data))
        add(data)
        add(b"\r\n")
    return b"".join(out)


def _fail(items: Sequence[_Item], error: BaseException) -> None:
    for _, future in items:
        if not future.done():
            future.set_exception(error)
