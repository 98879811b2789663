"""What the PostgreSQL backend promises beyond the suite: leases after a re-claim,
claims within demand, batched acks, wake-ups by notification, transactional enqueue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import psycopg
import pytest
from conveyor_postgres import acks, enqueue_on, waiting

import conveyor
from conveyor import Backend, ManualClock, Status, Task, WorkerInfo
from conveyor.outcome import Done

GUARD = 20.0  # seconds before a call is called hung; not a timing assertion


async def _first(stream: AsyncIterator[Task[bytes] | None]) -> Task[bytes] | None:
    return await asyncio.wait_for(anext(stream), GUARD)


async def test_heartbeat_extends_the_lease_of_a_task_claimed_again_after_its_lease_was_lost(
    pg_open: Callable[..., Backend], conveyor_clock: ManualClock
) -> None:
    backend = pg_open(clock=conveyor_clock, lease_seconds=10)
    async with backend:
        tid = await backend.push("again")
        me = WorkerInfo("w-again", backend.queue)
        first = await _first(backend.poll(me))
        assert first is not None and first.id == tid
        conveyor_clock.advance(11)
        assert await backend.resume_abandoned() == 1
        # The same worker claims it again: a new attempt under a new token.
        stream = backend.poll(me)
        second = await _first(stream)
        await stream.aclose()
        assert second is not None and second.id == tid and second.attempt == 2
        assert second.lease_token != first.lease_token
        conveyor_clock.advance(5)
        await backend.heartbeat(me)
        stored = await backend.fetch_by_id(tid)
        assert stored is not None and stored.lease_until is not None
        assert stored.lease_until == backend.now() + timedelta(seconds=10), "lease not extended"
        # And the extended lease is what keeps it: past the old deadline it is not abandoned.
        conveyor_clock.advance(6)
        assert await backend.resume_abandoned() == 0
        await backend.hooks.ack(second, Done())
        done = await backend.fetch_by_id(tid)
        assert done is not None and done.status is Status.DONE


async def test_a_claim_never_takes_more_than_the_workers_free_slots(
    pg_open: Callable[..., Backend],
) -> None:
    backend = pg_open()
    async with backend:
        await backend.push_many(range(10))
        me = WorkerInfo("w-three", backend.queue, concurrency=3)
        stream = backend.poll(me)
        got = [await _first(stream) for _ in range(3)]
        running = await backend.list_tasks(status=Status.RUNNING, page_size=100)
        assert len(running) == 3, "claimed ahead of the worker's demand"
        for task in got:
            assert task is not None
            await backend.hooks.ack(task, Done())
        await stream.aclose()
        assert len(await backend.list_tasks(status=Status.RUNNING, page_size=100)) == 0


async def test_acks_of_one_turn_go_as_one_statement(
    pg_open: Callable[..., Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    real = acks.AckBatcher._send

    async def counting(self: acks.AckBatcher, conn: object, batch: list[object], resent: bool):  # type: ignore[no-untyped-def]
        sent.append(len(batch))
        return await real(self, conn, batch, resent)  # type: ignore[arg-type]

    monkeypatch.setattr(acks.AckBatcher, "_send", counting)
    backend = pg_open()
    async with backend:
        ids = await backend.push_many(range(50))
        me = WorkerInfo("w-batch", backend.queue, concurrency=50)
        stream = backend.poll(me)
        tasks = [await _first(stream) for _ in range(50)]
        await asyncio.gather(*(backend.hooks.ack(t, Done(b"1")) for t in tasks if t))
        await stream.aclose()
        assert sent == [50], f"acks went as {sent}"
        done = await backend.check_status(ids)
        assert len(done) == 50 and all(r.status is Status.DONE for r in done)


async def test_an_idle_poll_is_woken_by_a_push_not_by_polling(
    pg_open: Callable[..., Backend],
) -> None:
    # An hour between looks: only the notification can deliver the task in time.
    worker_side = pg_open(idle_wait=3600)
    pusher = pg_open()
    async with worker_side, pusher:
        stream = worker_side.poll(WorkerInfo("w-idle", worker_side.queue))
        assert await _first(stream) is None
        waiting_poll = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.2)  # let it arm and sleep
        assert not waiting_poll.done()
        tid = await pusher.push("wake up")
        task = await asyncio.wait_for(waiting_poll, GUARD)
        assert task is not None and task.id == tid
        await worker_side.hooks.ack(task, Done())
        await stream.aclose()


async def test_wait_for_is_woken_by_the_finish_notification(
    pg_open: Callable[..., Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(waiting, "RECHECK", 3600.0)  # no safety-net reads during the test
    backend = pg_open()
    async with backend:
        tid = await backend.push(21)
        # Its own deadline far off: only the notification can end the wait within GUARD.
        results = asyncio.ensure_future(backend.wait_one(tid, timeout=3600))
        await asyncio.sleep(0.2)
        stream = backend.poll(WorkerInfo("w-fin", backend.queue))
        task = await _first(stream)
        assert task is not None
        await backend.hooks.ack(task, Done(b"42"))
        await stream.aclose()
        result = await asyncio.wait_for(results, GUARD)
        assert result.status is Status.DONE and result.result == 42


async def test_enqueue_in_the_applications_transaction(
    pg_url: str, pg_open: Callable[..., Backend]
) -> None:
    backend = pg_open()
    async with backend:
        await backend.migrate(apply=True)
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    with enqueue_on(conn):
                        lost = await backend.push("rolled back")
                        many = await backend.push_many(["also", "gone"])
                    raise RuntimeError("the application fails after pushing")
            async with conn.transaction():
                with enqueue_on(conn):
                    kept = await backend.push("committed")
                # Not visible to anyone else before the application commits.
                assert await backend.fetch_by_id(kept) is None
        assert await backend.fetch_by_id(lost) is None
        assert [await backend.fetch_by_id(i) for i in many] == [None, None]
        stored = await backend.fetch_by_id(kept)
        assert stored is not None and stored.status is Status.PENDING
        stream = backend.poll(WorkerInfo("w-tx", backend.queue))
        task = await _first(stream)
        await stream.aclose()
        assert task is not None and task.id == kept and task.args == b'"committed"'


async def test_enqueue_on_refuses_a_sync_connection(pg_url: str) -> None:
    with (
        psycopg.connect(pg_url) as conn,
        pytest.raises(TypeError, match="AsyncConnection"),
        enqueue_on(conn),  # type: ignore[arg-type]
    ):
        pass


async def test_vacuum_deletes_finished_tasks_in_batches_and_nothing_else(
    pg_open: Callable[..., Backend],
) -> None:
    backend = pg_open()
    async with backend:
        ids = await backend.push_many(range(2500))
        waiting_id = await backend.push("stays")
        me = WorkerInfo("w-vac", backend.queue, concurrency=500)
        stream = backend.poll(me)
        for _ in range(2500):
            task = await _first(stream)
            assert task is not None
            await backend.hooks.ack(task, Done())
        await stream.aclose()
        assert await backend.vacuum() == 2500
        assert await backend.fetch_by_id(ids[0]) is None
        assert await backend.fetch_by_id(waiting_id) is not None


def test_url_options_and_their_errors() -> None:
    backend = conveyor.open("postgresql://u@h:5433/db?queue=mail&schema=jobs&migrate=false")
    config = backend.plugin.config  # type: ignore[attr-defined]
    assert (config.url, config.queue, config.schema, config.migrate) == (
        "postgresql://u@h:5433/db", "mail", "jobs", False,
    )  # fmt: skip
    assert conveyor.open("postgres://h/db").name == "postgres"
    with pytest.raises(conveyor.ConfigError, match="schema must be 1 to 40 lower-case"):
        conveyor.open("postgresql://h/db?schema=Robert%27);DROP")


async def test_claims_that_do_not_wait_for_the_flush_keep_every_rule(
    pg_open: Callable[..., Backend],
) -> None:
    backend = pg_open(durable_claims=False)
    async with backend:
        ids = await backend.push_many(range(20))
        me = WorkerInfo("w-fast", backend.queue, concurrency=20)
        stream = backend.poll(me)
        tasks = [await _first(stream) for _ in range(20)]
        assert sorted(t.id for t in tasks if t) == sorted(ids)
        await asyncio.gather(*(backend.hooks.ack(t, Done()) for t in tasks if t))
        await stream.aclose()
        assert len(await backend.check_status(ids)) == 20


async def test_an_idle_poll_sends_no_query_while_it_waits(
    pg_open: Callable[..., Backend],
) -> None:
    backend = pg_open(idle_wait=3600)
    async with backend:
        stream = backend.poll(WorkerInfo("w-quiet", backend.queue))
        assert await _first(stream) is None
        waiting_poll = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)  # it arms, looks once, and sleeps on its listener
        connection = backend.plugin.connection  # type: ignore[attr-defined]
        pools = [connection.pool, connection.claims]
        before = [p.get_stats().get("requests_num", 0) for p in pools]
        await asyncio.sleep(1.0)  # a polling backend would ask the server now and then
        after = [p.get_stats().get("requests_num", 0) for p in pools]
        assert after == before, f"an idle poll used the server: {before} -> {after}"
        assert not waiting_poll.done()
        waiting_poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting_poll
        await stream.aclose()
