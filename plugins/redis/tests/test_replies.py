"""The pipelined connection's reply reader (hiredis inside the socket's protocol):
every reply shape (RESP2 and RESP3), however it is cut into reads, bytes that are
not RESP, and a real server's replies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
from conveyor_redis.replies import ReplyProtocol
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from conveyor import Backend, Done, Status, Task, TaskId, WorkerInfo

Open = Callable[..., Backend]

STREAM = (
    b":42\r\n+OK\r\n$5\r\nab\r\nc\r\n$-1\r\n$0\r\n\r\n*-1\r\n*0\r\n"
    b"*3\r\n:1\r\n*2\r\n$1\r\nx\r\n-ERR inner\r\n$2\r\nyz\r\n"
    b"-NOSCRIPT No matching script\r\n-ERR wrong\r\n"
    b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n~2\r\n#t\r\n:7\r\n,1.5\r\n(12345678901234567890\r\n"
    b"=8\r\ntxt:text\r\n#f\r\n>2\r\n$7\r\nmessage\r\n:1\r\n"
)
REPLIES = 17


def _check(replies: list[Any]) -> None:
    assert replies[:7] == [42, b"OK", b"ab\r\nc", None, b"", None, []]
    nested = replies[7]
    assert nested[0] == 1 and nested[1][0] == b"x" and nested[2] == b"yz"
    assert isinstance(nested[1][1], ResponseError) and str(nested[1][1]) == "inner"
    assert isinstance(replies[8], NoScriptError)
    assert isinstance(replies[9], ResponseError) and str(replies[9]) == "wrong"
    assert replies[10] == {b"a": 1, b"b": None}
    # A big number comes back as its digits (as from redis-py with hiredis), the
    # verbatim string without its format prefix.
    assert replies[11:15] == [[True, 7], 1.5, b"12345678901234567890", b"text"]
    assert replies[15] is False  # RESP3's false, not "incomplete"
    assert replies[16] == [b"message", 1]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, len(STREAM)])
async def test_every_reply_shape_however_the_reads_cut_it(piece: int) -> None:
    protocol = ReplyProtocol()

    async def feed() -> None:
        for start in range(0, len(STREAM), piece):
            protocol.data_received(STREAM[start : start + piece])
            await asyncio.sleep(0)
        protocol.connection_lost(None)

    feeding = asyncio.ensure_future(feed())
    _check([await protocol.read() for _ in range(REPLIES)])
    with pytest.raises(RedisConnectionError):
        await protocol.read()  # the connection ended: that is an error, not a reply
    await feeding


async def _all_of(protocol: ReplyProtocol) -> list[Any]:
    # The connection ends once everything is fed, so a reply lost on the way
    # fails the read (connection closed) rather than waiting for ever.
    protocol.connection_lost(None)
    return [await protocol.read() for _ in range(REPLIES)]


async def test_a_read_may_end_anywhere_in_a_reply() -> None:
    # Every place the first piece can end: the replies it holds are cut out of
    # it, the one it ends inside waits for the rest.
    for cut in range(1, len(STREAM)):
        protocol = ReplyProtocol()
        protocol.data_received(STREAM[:cut])
        protocol.data_received(STREAM[cut:])
        _check(await _all_of(protocol))
    # And one byte at a time.
    protocol = ReplyProtocol()
    for i in range(len(STREAM)):
        protocol.data_received(STREAM[i : i + 1])
    _check(await _all_of(protocol))


async def test_bytes_that_are_not_resp_end_the_connection() -> None:
    # The replies before them stand; what follows cannot be matched to a command,
    # so every later read fails as a lost connection and the socket is closed.
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(ReplyProtocol, sock=ours)
    theirs.setblocking(False)
    await loop.sock_sendall(theirs, b"+OK\r\n:1\r\n?what\r\n:2\r\n")
    assert [await protocol.read(), await protocol.read()] == [b"OK", 1]
    with pytest.raises(RedisConnectionError, match="Protocol error"):
        await protocol.read()
    with pytest.raises(RedisConnectionError):
        protocol.write(b"*1\r\n$4\r\nPING\r\n")
    assert await loop.sock_recv(theirs, 10) == b""  # closed from our side
    theirs.close()


async def test_a_reply_many_reads_long_comes_back_whole(redis_open: Open) -> None:
    backend = redis_open()
    big = bytes(range(256)) * 12_000  # 3 MB: dozens of reads
    task = Task(TaskId.new(), big, queue=backend.queue)
    await backend.hooks.push([task])
    fetched = await backend.fetch_by_id(task.id)
    assert fetched is not None and fetched.args == big
    stream = backend.poll(WorkerInfo("w", backend.queue))
    claimed = await anext(stream)
    assert claimed is not None and claimed.args == big
    await backend.hooks.ack(claimed, Done(big[::-1]))
    await stream.aclose()
    done = await backend.fetch_by_id(task.id)
    assert done is not None and (done.status, done.result) == (Status.DONE, big[::-1])
    await backend.aclose()


async def test_claims_and_acks_batched_together_reach_their_callers(redis_open: Open) -> None:
    backend = redis_open()
    ids = await asyncio.gather(*(backend.push({"n": i}, meta={"i": i}) for i in range(50)))
    stream = backend.poll(WorkerInfo("w", backend.queue, concurrency=50))
    seen = []
    for _ in range(50):
        task = await anext(stream)
        assert task is not None
        seen.append((task.id, dict(task.meta)))
        await backend.hooks.ack(task, Done(None))
    await stream.aclose()
    assert sorted(seen) == sorted((tid, {"i": i}) for i, tid in enumerate(ids))
    fetched = await backend.fetch_by_id(ids[0])
    assert fetched is not None and fetched.status is Status.DONE
    await backend.aclose()
