"""The Redis backend: atomic, fenced claims and acks in Lua; idle pollers block on the server."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import attrs
from redis.exceptions import RedisError

from conveyor import (
    BackendUnavailable,
    ConveyorError,
    Done,
    InvalidTransition,
    Kill,
    Outcome,
    Release,
    Retry,
    StaleLease,
    Status,
    Task,
    TaskId,
    TaskNotFound,
    WorkerInfo,
    hookimpl,
)
from conveyor.rules import new_token
from conveyor_redis.config import RedisConfig, config_from_url
from conveyor_redis.connection import TRANSIENT, Connection, retrying
from conveyor_redis.errors import FAILURES, guarded, text_of, translate
from conveyor_redis.expose import ExposeHooks
from conveyor_redis.keys import Keys, escape
from conveyor_redis.pipelining import pack
from conveyor_redis.records import (
    claimed,
    from_micros,
    meta_bytes,
    micros,
    pairs,
    priority_key,
    to_task,
)
from conveyor_redis.waiting import WaitHooks
from conveyor_redis.wakeup import NOSCRIPT, Waker, settle

__all__ = ["RedisBackend"]

_HELD = (Status.RUNNING, Status.QUEUED)

log = logging.getLogger("conveyor.redis")

PUSH_CHUNK = 500
"""Tasks per script call; a bigger push runs several calls in one MULTI/EXEC."""
BATCH = 500
"""Tasks per call of the maintenance operations (abandon, vacuum), to keep each script short."""


class RedisBackend(WaitHooks, ExposeHooks):
    """One queue on a Redis server; ``make_shared`` gives more queues over the same pool."""

    Config = RedisConfig
    config_from_url = staticmethod(config_from_url)

    def __init__(self, config: RedisConfig | None = None, shared: Connection | None = None):
        self.config = config or RedisConfig()
        self.connection = shared or Connection(self.config)
        self.connection.users += 1
        self.client = self.connection.client
        self.script = self.connection.script
        self.pipeline = self.connection.pipeline
        self.keys = Keys(self.config.prefix)
        self.clock = self.config.clock
        # Tasks handed to each worker by this object and not yet acked: how many
        # more a poll may claim in one round trip without exceeding the worker's slots.
        self._outstanding: dict[str, int] = {}
        self._background: set[asyncio.Future[None]] = set()
        # The unpark arguments of each wait in flight: what close() takes off the
        # parked list when a poll is still waiting (or its cancel not yet run).
        self._parked: dict[str, tuple[Any, ...]] = {}
        self._closed = False

    # --- helpers ---------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock.time() * 1_000_000)

    async def _call(self, op: str, *args: Any, merged: bool = False) -> Any:
        """``op``, sent again (flagged as resent) after a dropped connection.

        The first try is made inline: the retry machinery costs nothing until needed.
        ``merged``: sent together with the calls of ``op`` queued behind a batch in
        flight (``AutoPipeline.script_merged``).
        """
        script = self.pipeline.script_merged if merged else self.pipeline.script
        base = self.keys.base
        try:
            if not self.connection.layout_checked:
                await self.connection.check_layout(self.keys)
            return await script(op, base, self._now(), "0", *args)
        except TRANSIENT:
            pass
        except FAILURES as exc:
            raise translate(exc, self.connection.where()) from exc
        try:
            return await retrying(lambda _: script(op, base, self._now(), "1", *args), failed=1)
        except FAILURES as exc:
            raise translate(exc, self.connection.where()) from exc

    def _lease_until(self, now: int) -> int:
        return now + int(self.config.lease_seconds * 1_000_000)

    # --- Backend ---------------------------------------------------------------------

    @hookimpl
    async def poll(self, worker: WorkerInfo) -> AsyncIterator[Task[bytes] | None]:
        buffer: deque[Task[bytes]] = deque()
        idle = False
        due: int | None = None
        waker = Waker(self.connection.client.connection_pool, self.config.socket_timeout)
        try:
            while True:
                if buffer:
                    yield buffer.popleft()
                    continue
                try:
                    if not idle:
                        due = await self._claim(worker, buffer)
                    else:
                        # Idle reported after a claim that found nothing: park on the
                        # server for a push to hand a task over (or the next due time);
                        # claim here when the wait ended without one.
                        parked = await self._wait_and_claim(worker, buffer, due, waker)
                        if parked is not None:
                            due = await self._claim(worker, buffer, parked)
                except FAILURES as exc:
                    # The worker backs off and opens a fresh stream (a burst stops):
                    # the contract's way, so every backend's outage reads the same.
                    raise translate(exc, self.connection.where()) from exc
                if buffer:
                    idle = False
                    continue
                idle = True
                yield None
        finally:
            if not waker.busy:
                await waker.close()
            if buffer:
                await self._release_unstarted(buffer)

    async def _claim(
        self, worker: WorkerInfo, into: deque[Task[bytes]], parked: Sequence[str] = ()
    ) -> int | None:
        """Claim up to the worker's free slots into ``into``; else the next due time.

        ``parked``: the hand key and registration of a wait that ended without a
        hand-off, taken off (and what was handed meanwhile given back) first.
        """
        name = worker.name
        want = max(1, worker.concurrency - self._outstanding.get(name, 0))
        now = self._now()
        tokens = [new_token() for _ in range(want)]
        until = self._lease_until(now)
        queue = self.config.queue
        if not self.connection.layout_checked:
            await self.connection.check_layout(self.keys)
        # Not resent after a lost reply: the claim may have landed, and its tasks come
        # back when the lease lapses (at-least-once) rather than being claimed twice now.
        sent = self.pipeline.submit_script(
            "unpark" if parked else "claim", self.keys.base, now, "0", self.keys.queue(queue),
            name, self.keys.held(name), until, *parked, *tokens,
        )  # fmt: skip
        try:
            reply = await asyncio.shield(sent)
        except asyncio.CancelledError:
            # The claim still lands: what it takes goes straight back rather than stay
            # held by a worker that will never start it.
            sent.add_done_callback(
                lambda _: self._release_claimed(sent, queue, name, tokens, until)
            )
            raise
        if isinstance(reply, bytes):
            return int(reply) if reply else None
        into.extend(self._claimed(reply, queue, name, tokens, until))
        # Only records set aside, none claimed: look again at once (now) for healthy ones.
        return None if into else now

    def _claimed(
        self, reply: list[bytes], queue: str, name: str, tokens: list[str], until: int
    ) -> list[Task[bytes]]:
        lease = from_micros(until)
        if any(r[:1] == b"!" for r in reply):
            reply = self._set_aside(reply, queue)
        tasks = [claimed(r, queue, name, t, lease) for r, t in zip(reply, tokens, strict=False)]
        self._outstanding[name] = self._outstanding.get(name, 0) + len(tasks)
        return tasks

    def _set_aside(self, reply: list[bytes], queue: str) -> list[bytes]:
        """Log each record the claim set aside (``!id why``); the claimed records."""
        where, key = self.connection.where(), self.keys.malformed
        for record in reply:
            if record[:1] == b"!":
                task_id, _, why = record[1:].decode("utf-8", "replace").partition(" ")
                log.error(
                    "task %s of queue %r on redis %s has an unusable record (%s): set aside"
                    " in %s, the rest of the queue goes on; inspect HGETALL %s, fix it and"
                    " run 'conveyor resume %s', or delete it",
                    task_id, queue, where, why, key, self.keys.task(task_id), task_id,
                )  # fmt: skip
        return [r for r in reply if r[:1] != b"!"]

    def _release_claimed(
        self, sent: asyncio.Future[Any], queue: str, name: str, tokens: list[str], until: int
    ) -> None:
        """The reply of a claim whose poll was cancelled: release what it claimed."""
        if sent.cancelled() or sent.exception() is not None or isinstance(sent.result(), bytes):
            return
        tasks = self._claimed(sent.result(), queue, name, tokens, until)
        release = asyncio.ensure_future(self._release_unstarted(deque(tasks)))
        self._background.add(release)
        release.add_done_callback(self._background.discard)

    async def _wait_and_claim(
        self, worker: WorkerInfo, into: deque[Task[bytes]], due: int | None, waker: Waker
    ) -> list[str] | None:
        """Park for a push to hand a task over, up to ``idle_wait`` or the next due time
        (see ``wakeup.py``). ``None`` when tasks came; else the caller claims, taking
        the registration returned (hand key, registration; empty: none made) off first."""
        timeout = self.config.idle_wait
        if due is not None:
            timeout = min(timeout, (due - self._now()) / 1_000_000)
        if timeout < 0.001:
            return []
        name, queue = worker.name, self.config.queue
        want = max(1, worker.concurrency - self._outstanding.get(name, 0))
        now = self._now()
        tokens = [new_token() for _ in range(want)]
        wait = int(timeout * 1_000_000)
        # Stamped when sent, claimed up to ``timeout`` later: the lease counts from
        # the end of the wait, so it is never shorter than lease_seconds.
        until = self._lease_until(now) + wait
        hand = self.keys.hand(queue, name)
        # The first token is the registration's: a park that registers claimed nothing.
        reg = f"{tokens[0]} {until} {now + wait} {escape(name)} {name}"
        commands = [
            self.pipeline.script_command(
                "park", self.keys.base, (now, "0", self.keys.queue(queue), name,
                self.keys.held(name), until, hand, reg, *tokens),
            ),
            pack(("BLPOP", hand, self.keys.wake(queue), f"{timeout:.3f}")),
        ]  # fmt: skip
        unpark = (self.keys.queue(queue), name, self.keys.held(name), until, hand, reg)
        self._parked[reg] = unpark
        exchange = asyncio.ensure_future(waker.exchange(commands, timeout))
        waker.busy = True
        try:
            reply = await asyncio.shield(exchange)
        except asyncio.CancelledError:
            # Stopped or paused while waiting: end the block, take the registration
            # off; a task claimed or handed first is handed straight back.
            cid = waker.client_id
            finish = asyncio.ensure_future(self._after_cancel(exchange, waker, cid, queue,
                name, tokens, until, hand, reg))  # fmt: skip
            self._background.add(finish)
            finish.add_done_callback(self._background.discard)
            raise
        except BaseException:
            # The connection failed: a registration made lapses at its deadline.
            self._parked.pop(reg, None)
            raise
        finally:
            if exchange.done():
                waker.busy = False
        self._parked.pop(reg, None)
        if reply is NOSCRIPT:
            return []  # nothing ran: the caller's claim loads the script
        tasks = self._taken(reply, hand, queue, name, tokens, until)
        if tasks is None:
            return [hand, reg]
        into.extend(tasks)
        return None if into else []  # only records set aside: look again at once

    def _taken(
        self, reply: tuple[Any, Any], hand: str, queue: str, name: str, tokens: list[str],
        until: int,
    ) -> list[Task[bytes]] | None:  # fmt: skip
        """The tasks a wait's replies (park's, BLPOP's) brought: claimed by the park,
        or handed by a push. ``None`` when neither: the worker is still registered."""
        parked, popped = reply
        if isinstance(parked, list):
            return self._claimed(parked, queue, name, tokens, until)
        if popped is not None and popped[0] == hand.encode() and popped[1] != b"-":
            token, _, record = popped[1].partition(b" ")
            return self._claimed([record], queue, name, [token.decode()], until)
        return None

    async def _after_cancel(
        self, exchange: asyncio.Future[Any], waker: Waker, cid: bytes | None, queue: str,
        name: str, tokens: list[str], until: int, hand: str, reg: str,
    ) -> None:  # fmt: skip
        async def unblock() -> None:
            if self._closed:
                await waker.close()  # close() unparked it already: just end the wait
            elif cid is not None:
                await self.pipeline.execute("CLIENT", "UNBLOCK", cid)

        reply = await settle(exchange, unblock)
        waker.busy = False
        await waker.close()
        tasks = None if reply is NOSCRIPT or reply is None else self._taken(
            reply, hand, queue, name, tokens, until)  # fmt: skip
        unpark = self._parked.pop(reg, None)
        if tasks is None and reply is not NOSCRIPT and unpark is not None:
            # Still registered, or unknown (the exchange failed): off the list before
            # any more push hands it a task, and what one handed already goes back.
            await self._unpark(unpark)
        if tasks:
            await self._release_unstarted(deque(tasks))

    async def _unpark(self, args: tuple[Any, ...]) -> None:
        try:
            await self._call("unpark", *args)
        except (ConveyorError, RedisError) as exc:
            # Its registration lapses at the end of its wait; a task handed meanwhile
            # comes back with its lease.
            log.warning("could not unpark worker %r (queue key %s): %s", args[1], args[0], exc)

    async def _release_unstarted(self, buffer: deque[Task[bytes]]) -> None:
        """Hand back tasks claimed ahead for free slots the worker never filled.

        Newest first: each goes back to the head of its list, so they end up in
        the order they were claimed in.
        """
        while buffer:
            task = buffer.pop()
            try:
                await asyncio.shield(self.ack(task, Release("worker stopped before starting it")))
            except (ConveyorError, RedisError) as exc:
                log.warning("could not release unstarted task %s: %s", task.id, exc)

    @hookimpl
    @guarded
    async def heartbeat(self, worker: WorkerInfo) -> None:
        # Only the worker's own leases: the sweep of dead workers' tasks is
        # resume_abandoned, which the Worker calls on the same beat.
        name = worker.name

        async def beat(_: bool) -> Any:
            now = self._now()
            until = self._lease_until(now)
            return await self.pipeline.script(
                "heartbeat", self.keys.base, now, "0", name, self.keys.held(name), until
            )

        await retrying(beat)

    @hookimpl
    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            loop = asyncio.get_running_loop()
            pending = {f for f in self._background if f.get_loop() is loop}
            if pending:
                # A poll cancelled while parked is still taking its registration off and
                # handing back what it held: let it, so no push hands a task to a gone worker.
                await asyncio.wait(pending, timeout=self.config.socket_timeout)
            # Polls still waiting: no push may hand them a task once nobody will run it.
            for unpark in list(self._parked.values()):
                await self._unpark(unpark)
            self._parked.clear()
            await self.connection.release()

    # --- Ack ---------------------------------------------------------------------------

    @hookimpl
    async def ack(self, task: Task[bytes], outcome: Outcome) -> None:
        value: bytes | str = b""
        run_at = 0
        has_value = "0"
        if type(outcome) is Done:
            kind = "done"
            if outcome.result is not None:
                value, has_value = outcome.result, "1"
        elif type(outcome) is Retry:
            kind, value, run_at = "retry", outcome.error, micros(outcome.run_at)
        elif type(outcome) is Kill:
            kind, value = "kill", outcome.error
        elif type(outcome) is Release:
            kind = "release"
        else:
            raise TypeError(f"unknown outcome {outcome!r}")
        name = task.lock_by or ""
        if name in self._outstanding:
            self._outstanding[name] = max(0, self._outstanding[name] - 1)
        reply = await self._call(
            "ack", task.id, task.lease_token or "", kind, value, run_at, has_value, merged=True
        )
        if type(reply) is not bytes:  # a refusal, or a resent ack recognised as applied
            self._check_reply(task, reply, "ack")

    def _check_reply(self, task: Task[Any], reply: Sequence[bytes], what: str) -> None:
        head = reply[0]
        if head == b"ok":
            return
        if head == b"gone":
            raise StaleLease(f"task {task.id} no longer exists; the {what} was refused")
        if head == b"stale":
            status, holder = reply[1].decode(), reply[2].decode()
            if status in (Status.RUNNING.value, Status.QUEUED.value):
                raise StaleLease(
                    f"task {task.id} is now held by {holder!r} under another lease;"
                    f" the {what} from {task.lock_by!r} is out of date and was refused"
                )
            raise StaleLease(
                f"task {task.id} is {status}, no longer held by {task.lock_by!r};"
                f" this {what} is out of date and was refused"
            )
        if head == b"notfound":
            raise TaskNotFound(f"no task {task.id} to {what}")
        if head == b"malformed":
            raise ConveyorError(
                f"task {task.id} on redis {self.connection.where()} has an unusable record"
                f" ({reply[1].decode('utf-8', 'replace')}); the {what} changed nothing:"
                f" inspect HGETALL {self.keys.task(task.id)} and fix it"
            )
        if head == b"transition":
            raise InvalidTransition(Status(reply[1].decode()), Status.PENDING)
        raise ConveyorError(f"unexpected reply {reply!r} from the {what} script")

    # --- TaskSink ----------------------------------------------------------------------

    @hookimpl
    async def push(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        try:
            # Safe to resend: the script skips ids already stored.
            if len(tasks) <= PUSH_CHUNK:
                await self._call("push", *self._flat(tasks))
            else:
                await retrying(lambda resent: self._push_chunks(tasks, resent))
        except (*FAILURES, BackendUnavailable) as exc:
            cause = exc.__cause__ if isinstance(exc, BackendUnavailable) else exc
            first = tasks[0].id
            raise BackendUnavailable(
                f"redis {self.connection.where()} is unreachable ({text_of(cause or exc)}):"
                f" the push of {len(tasks)} task(s) stored all or none of them; if the"
                f" connection dropped after sending, look for task {first} (conveyor show"
                f" {first}) before pushing again"
            ) from cause
        return [t.id for t in tasks]

    def _flat(self, tasks: Sequence[Task[bytes]]) -> list[Any]:
        """The push script's arguments for ``tasks`` (see ``tasks.lua``)."""
        queue_key = self.keys.queue
        flat: list[Any] = []
        for t in tasks:
            flat += (
                t.id, t.queue, queue_key(t.queue), micros(t.run_at), priority_key(t.priority),
                t.max_attempts, t.args, meta_bytes(t.meta), t.name or "",
            )  # fmt: skip
        return flat

    async def _push_chunks(self, tasks: Sequence[Task[bytes]], resent: bool) -> None:
        """All or none: one script call per chunk, back to back in one MULTI/EXEC."""
        if not self.connection.layout_checked:
            await self.connection.check_layout(self.keys)
        async with self.client.pipeline(transaction=True) as pipe:
            now, flag = self._now(), "1" if resent else "0"
            for start in range(0, len(tasks), PUSH_CHUNK):
                flat = self._flat(tasks[start : start + PUSH_CHUNK])
                await self.script(args=("push", self.keys.base, now, flag, *flat), client=pipe)
            await pipe.execute()

    @hookimpl
    async def push_weak(self, tasks: Sequence[Task[bytes]]) -> Sequence[TaskId]:
        return await self.push(tasks)

    # --- task management -----------------------------------------------------------------

    @hookimpl
    @guarded
    async def fetch_by_id(self, task_id: TaskId) -> Task[bytes] | None:
        key = self.keys.task(task_id)
        flat = await retrying(lambda _: self.pipeline.execute("HGETALL", key))
        if not flat:
            return None
        try:
            return to_task(task_id, pairs(flat))
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise ConveyorError(
                f"task {task_id} on redis {self.connection.where()} has an unusable record"
                f" ({type(exc).__name__}: {exc}): inspect HGETALL {key}, fix the field and"
                f" run 'conveyor resume {task_id}', or delete it"
            ) from None

    @hookimpl
    @guarded
    async def update(self, task: Task[bytes]) -> None:
        key = self.keys.task(task.id)
        for _ in range(10):
            flat = await self.pipeline.execute("HGETALL", key)
            if not flat:
                raise TaskNotFound(f"no task {task.id} to update")
            stored = to_task(task.id, pairs(flat))
            fields = self._updated(stored, task)
            reply = await self._call("update", task.id, stored.status.value, *fields)
            if reply[0] != b"conflict":
                self._check_reply(task, reply, "update")
                return
        raise ConveyorError(f"task {task.id} kept changing while it was being updated; try again")

    def _updated(self, stored: Task[bytes], given: Task[bytes]) -> list[Any]:
        """The hash fields ``update(given)`` writes over ``stored``: what an update may
        change comes from ``given``; id, queue, attempt and lease stay, so an update
        can neither forge nor break a claim."""
        old, new = stored.status, given.status
        if new is not old:
            if old in _HELD or new in _HELD:
                error = InvalidTransition(old, new)
                error.args = (
                    f"update cannot move a task from {old.value} to {new.value}: only a claim"
                    " enters and only an ack, reschedule or resume leaves Running/Queued",
                )
                raise error
            old.check(new)
        if type(given.max_attempts) is not int or given.max_attempts < max(1, stored.attempt):
            raise ValueError(
                f"max_attempts must be a whole number of at least 1 and at least the task's"
                f" {stored.attempt} attempt(s) so far, not {given.max_attempts!r}"
            )
        keys = self.keys
        fields: list[Any] = [
            "q", stored.queue, "qk", keys.queue(stored.queue), "s", new.value,
            "a", stored.attempt, "x", given.max_attempts, "r", micros(given.run_at),
            "pk", priority_key(given.priority), "d", given.args,
        ]  # fmt: skip
        if given.meta:
            fields += ["meta", meta_bytes(given.meta)]
        if given.result is not None:
            fields += ["res", given.result]
        if given.last_error is not None:
            fields += ["err", given.last_error]
        if given.name:
            fields += ["n", given.name]
        if new in _HELD and stored.lease_token and stored.lease_until:
            holder = stored.lock_by or ""
            fields += ["by", holder, "tok", stored.lease_token, "lu", micros(stored.lease_until)]
            fields += ["hk", keys.held(holder)]
        return fields

    @hookimpl
    @guarded
    async def reschedule(self, task: Task[bytes], run_at: datetime) -> None:
        reply = await self._call("reschedule", task.id, task.lease_token or "", micros(run_at))
        self._check_reply(task, reply, "reschedule")

    @hookimpl
    @guarded
    async def vacuum(self) -> int:
        removed = 0
        for raw in await self.client.smembers(self.keys.queues):
            stem = self.keys.queue(raw.decode())
            for status in (Status.DONE, Status.KILLED):
                while True:
                    n = int(await self._call("vacuum", stem, status.value, BATCH))
                    removed += n
                    if n < BATCH:
                        break
        return removed

    @hookimpl
    @guarded
    async def resume_by_id(self, task_id: TaskId) -> bool:
        return bool(await self._call("resume", task_id))

    @hookimpl
    @guarded
    async def resume_abandoned(self) -> int:
        touched = 0
        while True:
            n = int(await self._call("abandon", BATCH))
            touched += n
            if n < BATCH:
                return touched

    # --- ConfigExt, MakeShared ---------------------------------------------------------------

    @hookimpl
    def get_queue(self) -> str:
        return self.config.queue

    @hookimpl
    def make_shared(self, queue: str) -> object:
        return RedisBackend(attrs.evolve(self.config, queue=queue), self.connection)

    def __repr__(self) -> str:
        return f"<RedisBackend {self.connection.where()} queue={self.config.queue!r}>"
