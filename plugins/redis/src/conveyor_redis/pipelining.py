"""Auto-pipelining: one connection, and every command issued while another is in
flight goes out with the next batch, in one write.

Why: redis-py's client takes a pooled connection, arms a timeout and parses one
reply per command; on a loaded two-core machine that costs more than the server
spends running the whole push script. Here a caller that finds the connection
idle sends its command and reads its reply itself (no task, no hand-off); callers
arriving meanwhile (the lanes of a worker acking together) queue up and share the
next write and the next read burst, which a background task (the drainer) sends
and reads. Replies come back in the order commands were sent, so each is matched
to its caller by position.

Timeouts are kept by one timer per ``timeout`` seconds of traffic rather than one
per command: a batch unanswered that long is abandoned, its callers get
``TimeoutError`` and the connection is dropped (the next call reconnects). Any
failure of a batch fails each of its callers; none is ever left waiting.
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

from conveyor import BackendClosed
from conveyor_redis.replies import ReplyProtocol

__all__ = ["AutoPipeline", "pack", "pack_arguments"]

_Item = tuple["bytes | _Merged", "asyncio.Future[Any]"]

MANY = {"ack": "acks"}
"""Script operations whose calls queued behind a batch in flight go out as one call
of their many-form (see ``tasks.lua``): the script's set-up is paid once for all."""


class AutoPipeline:
    """Commands over one dedicated connection, batched while one is in flight."""

    def __init__(self, pool: ConnectionPool, script: str, timeout: float) -> None:
        kwargs = dict(pool.connection_kwargs)
        # Timeouts are this class's (one timer, not one per read); health checks are
        # the traffic itself. The pool's own maintenance handler is for its connections.
        kwargs.update(socket_timeout=None, health_check_interval=0)
        kwargs.pop("maint_notifications_pool_handler", None)
        self._kwargs = kwargs
        # Typed loosely: redis-py leaves connect() and the reply shapes unannotated.
        self._connection_class: Any = pool.connection_class
        self._script = script
        self.sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        self.timeout = timeout
        self._heads: dict[tuple[str, str], bytes] = {}
        self._closed = False
        self._reset(None)

    def _reset(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Fresh state for ``loop``: nothing queued, nothing in flight, no connection."""
        self._loop = loop
        self._conn: Any = None
        self._replies: ReplyProtocol | None = None
        self._queue: list[_Item] = []
        self._busy = False
        self._reader: asyncio.Task[Any] | None = None
        self._sent_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired: asyncio.Task[Any] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._reloaded = False

    # --- calls ------------------------------------------------------------------------

    async def script(self, op: str, base: str, *args: Any) -> Any:
        """Run ``op`` of the Lua script, ARGV = op, base, args (no KEYS); loaded if missing."""
        return await self._send(self._script_command(op, base, args))

    async def script_merged(self, op: str, base: str, now: int, resent: str, *args: Any) -> Any:
        """``script(op, base, now, resent, *args)``, sent together with the calls of the
        same ``op`` that queue up while a batch is in flight (``MANY``)."""
        loop = asyncio.get_running_loop()
        if not self._busy or loop is not self._loop or self._closed:
            return await self.script(op, base, now, resent, *args)
        last = self._queue[-1][0] if self._queue else None
        if isinstance(last, _Merged) and last.takes(op, base):
            return await last.add(loop, now, resent, args)
        merged = _Merged(op, base)
        future = merged.add(loop, now, resent, args)
        group: asyncio.Future[Any] = loop.create_future()
        group.add_done_callback(merged.settle)
        self._queue.append((merged, group))
        return await future

    def submit_script(self, op: str, base: str, *args: Any) -> asyncio.Future[Any]:
        """``script`` without waiting: the reply arrives on the returned future, and
        cancelling whoever awaits it does not interrupt the read."""
        return self._submit(self._script_command(op, base, args))

    async def execute(self, *command: Any) -> Any:
        """Send one command and return its reply (a ``ResponseError`` reply is raised)."""
        return await self._send(pack(command))

    def script_command(self, op: str, base: str, args: Sequence[Any]) -> bytes:
        """The packed ``EVALSHA`` of ``op`` with ``args``, for a caller sending it itself."""
        return self._script_command(op, base, args)

    def _script_command(self, op: str, base: str, args: Sequence[Any]) -> bytes:
        head = self._heads.get((op, base))
        if head is None:
            # The unchanging part of every call of this operation, packed once.
            head = self._heads[op, base] = pack_arguments(("EVALSHA", self.sha, 0, op, base))
        return b"*%d\r\n%b%b" % (len(args) + 5, head, pack_arguments(args))

    def _enqueue(self, command: bytes) -> tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]:
        if self._closed:
            raise BackendClosed("this Redis backend was closed; open a new one")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # First use, or a new event loop (asyncio.run again): what belonged to the
            # old loop cannot be awaited from this one.
            self._reset(loop)
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        return loop, future

    async def _send(self, command: bytes) -> Any:
        loop, future = self._enqueue(command)
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
        loop, future = self._enqueue(command)
        if not self._busy:
            self._busy = True
            self._continue(loop)
        return future

    async def close(self) -> None:
        """Drop the connection for good; queued and later callers get ``BackendClosed``."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        queued, self._queue = self._queue, []
        _fail(queued, BackendClosed("this Redis backend was closed while the call waited"))
        if self._drainer is not None:
            self._drainer.cancel()
        await self._drop()

    # --- the sending side -------------------------------------------------------------

    def _continue(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a batch: hand what queued up meanwhile to the drainer, or go idle."""
        if self._queue and not self._closed:
            drainer = self._drainer = loop.create_task(self._drain(loop))
            # A done callback rather than a finally: it runs even for a drainer
            # cancelled before its first step.
            drainer.add_done_callback(self._drained)
        else:
            self._busy = False

    def _drained(self, drainer: asyncio.Task[None]) -> None:
        if drainer is not self._drainer:
            return  # from an earlier loop or connection: the state is no longer its own
        self._drainer = None
        if self._loop is not None and not self._loop.is_closed():
            self._continue(self._loop)
        else:
            self._busy = False

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and not self._closed:
            await self._flush(loop)

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send everything queued in one write and hand each reply to its caller.

        Raises only ``CancelledError`` (of the task running it); every other failure
        is handed to the batch's callers.
        """
        # A caller cancelled while queued has given up: its command is not sent.
        batch: list[_Item] = []
        commands: list[bytes] = []
        for command, future in self._queue:
            if not future.done():
                data = command if isinstance(command, bytes) else command.seal(self)
                if data is not None:
                    batch.append((command, future))
                    commands.append(data)
        self._queue = []
        if not batch:
            return
        missing: list[_Item] = []
        try:
            # Watched from here on: a server that accepts connections but never
            # answers (stopped, overloaded) holds up the handshake as much as a reply.
            self._reader = asyncio.current_task()
            self._sent_at = loop.time()
            if self._timer is None:
                self._timer = loop.call_at(self._sent_at + self.timeout, self._check, loop)
            replies = self._replies
            if replies is None or replies.lost is not None or not self._conn.is_connected:
                await self._drop()
                conn = self._conn = self._connection_class(**self._kwargs)
                await conn.connect()  # redis-py's handshake: AUTH, HELLO, SELECT, ...
                # From here on the socket's bytes go to this class's own protocol.
                replies = self._replies = ReplyProtocol.take_over(conn._writer.transport)
            replies.write(b"".join(commands))
            if replies.paused:
                await replies.drain()
            for item in batch:
                reply = await replies.read()
                if isinstance(reply, NoScriptError):
                    if self._reloaded:
                        # Loaded a moment ago and missing again (a proxy in front of
                        # several servers?): fail rather than resend for ever.
                        _fail([item], reply)
                    else:
                        missing.append(item)  # not run: sent again once loaded
                elif isinstance(reply, ResponseError):
                    _fail([item], reply)
                elif not item[1].done():
                    item[1].set_result(reply)
            self._reloaded = False
            if missing:
                replies.write(pack(("SCRIPT", "LOAD", self._script)))
                loaded = await replies.read()
                if isinstance(loaded, ResponseError):
                    raise loaded
                self._reloaded = True
                self._queue[:0] = missing
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # Only the watchdog's cancel (none from outside as well): the batch timed
            # out and this task goes on; any other cancel is passed on.
            timed_out = task is not None and self._expired is task and task.uncancel() == 0
            self._expired = None
            await self._drop()
            if timed_out:
                _fail(batch + missing, RedisTimeoutError(f"no reply within {self.timeout} s"))
                return
            _fail(batch + missing, RedisConnectionError("a batch was interrupted by cancellation"))
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self._drop()
            error = exc if not isinstance(exc, OSError) else RedisConnectionError(str(exc))
            _fail(batch + missing, error)
        except Exception as exc:
            # Anything else (an error reply while connecting or loading the script, a
            # closed loop, ...): the connection's state is unknown, the callers see why.
            await self._drop()
            _fail(batch + missing, exc)
        finally:
            self._sent_at = None
            self._reader = None

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: abandon a batch unanswered for ``timeout``; re-arm while busy."""
        self._timer = None
        sent, reader = self._sent_at, self._reader
        if sent is None or reader is None or loop is not self._loop:
            return
        due = sent + self.timeout
        if loop.time() >= due:
            self._expired = reader
            reader.cancel()
        else:
            self._timer = loop.call_at(due, self._check, loop)

    async def _drop(self) -> None:
        conn, self._conn, self._replies = self._conn, None, None
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
        kind = type(arg)
        # Exact types first, one format per argument: this runs for every argument of
        # every call on the hot path (a push has about 15).
        if kind is str:
            data = arg.encode()
        elif kind is bytes:
            data = arg
        elif kind is int:
            data = b"%d" % arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        elif isinstance(arg, (bytes, bytearray, memoryview)):
            data = bytes(arg)
        else:
            raise TypeError(f"cannot send {type(arg).__name__} {arg!r} to redis")
        add(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class _Merged:
    """Calls of one operation queued behind a batch in flight, sent as one call of
    its many-form; its group future's reply is handed out to each caller's future."""

    def __init__(self, op: str, base: str) -> None:
        self.op, self.base = op, base
        self.calls: list[tuple[int, str, Sequence[Any], asyncio.Future[Any]]] = []
        self.sent: list[asyncio.Future[Any]] | None = None
        self.command: bytes | None = None

    def takes(self, op: str, base: str) -> bool:
        return self.sent is None and op == self.op and base == self.base

    def add(
        self, loop: asyncio.AbstractEventLoop, now: int, resent: str, args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = loop.create_future()
        self.calls.append((now, resent, args, future))
        return future

    def seal(self, pipeline: AutoPipeline) -> bytes | None:
        """The command, built from the callers still waiting; ``None`` if none is."""
        if self.sent is None:
            calls = [c for c in self.calls if not c[3].done()]
            self.sent = [c[3] for c in calls]
            if len(calls) == 1:
                now, resent, args, _ = calls[0]
                self.command = pipeline._script_command(self.op, self.base, (now, resent, *args))
            elif calls:
                # The latest clock reading of the calls: each was made before it.
                flat: list[Any] = [calls[-1][0], "0"]
                for _, resent, args, _ in calls:
                    flat += (resent, *args)
                self.command = pipeline._script_command(MANY[self.op], self.base, flat)
        return self.command

    def settle(self, group: asyncio.Future[Any]) -> None:
        futures = self.sent if self.sent is not None else [c[3] for c in self.calls]
        if group.cancelled():
            error: BaseException = RedisConnectionError("the call was abandoned")
        else:
            error = group.exception()  # type: ignore[assignment]
        if error is None and len(futures) > 1:
            replies = group.result()
            if not isinstance(replies, list) or len(replies) != len(futures):
                error = RedisConnectionError(f"{len(futures)} replies expected, not {replies!r}")
        if error is None and len(futures) > 1:
            for future, reply in zip(futures, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
            return
        for future in futures:
            if not future.done():
                if error is None:
                    future.set_result(group.result())
                else:
                    future.set_exception(error)


def _fail(items: Sequence[_Item], error: BaseException) -> None:
    for _, future in items:
        if not future.done():
            future.set_exception(error)
