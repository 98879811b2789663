"""An idle poll's wait that carries its claim: one round trip from push to claimed task.

An idle poller sends two commands back to back on a connection of its own:

    BLMOVE <queue>wake <queue>woke:<worker> LEFT RIGHT <timeout>
    EVALSHA <tasks.lua> 0 wclaim ...

Redis runs a client's commands in order, so the script runs on the server the
moment the blocking move is served (a push's wake token arrived), with no reply
sent and read in between: the worker learns of the push and gets its claimed
task in the same reply burst. The script claims only if the token did move
into the worker's ``woke`` key (it deletes it), so a wait that timed out, or
that was ended by ``CLIENT UNBLOCK`` (a cancelled poll: stop or pause), claims
nothing. The claim itself is the ordinary fenced claim of ``tasks.lua``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.connection import ConnectionPool
from redis.exceptions import NoScriptError

__all__ = ["Waker", "NOSCRIPT"]

NOSCRIPT = object()
"""The script was not loaded on the server: the caller claims the ordinary way (which loads it)."""


class Waker:
    """One connection for one poll stream's blocking waits."""

    def __init__(self, pool: ConnectionPool, socket_timeout: float) -> None:
        kwargs = dict(pool.connection_kwargs)
        kwargs.update(health_check_interval=0)
        kwargs.pop("maint_notifications_pool_handler", None)
        self._kwargs = kwargs
        self._connection_class: Any = pool.connection_class
        self._conn: Any = None
        self.client_id: bytes | None = None
        self.socket_timeout = socket_timeout
        self.busy = False
        """An exchange is under way (a cancelled one finishes in the background)."""

    async def exchange(self, commands: list[bytes], block: float) -> Any:
        """Send ``commands`` (a blocking move, then the claim); the claim's reply.

        Any failure drops the connection (the next wait opens a fresh one) and is raised.
        """
        try:
            conn = self._conn
            if conn is None or not conn.is_connected:
                conn = self._conn = self._connection_class(**self._kwargs)
                await conn.connect()
                await conn.send_command("CLIENT", "ID", check_health=False)
                self.client_id = b"%d" % int(await conn.read_response())
            await conn.send_packed_command(commands, check_health=False)
            await conn.read_response(timeout=block + self.socket_timeout)
            try:
                return await conn.read_response()
            except NoScriptError:
                return NOSCRIPT
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn, self.client_id = self._conn, None, None
        if conn is not None:
            try:
                await conn.disconnect(nowait=True)
            except Exception:  # noqa: S110 - dropping a connection; nothing to report
                pass


async def settle(exchange: asyncio.Future[Any], unblock: Any) -> Any:
    """After a cancelled wait: end the block (``unblock()``) and return the exchange's reply.

    ``None`` when the exchange failed (its connection is dropped already).
    """
    if not exchange.done():
        try:
            await unblock()
        except Exception:  # noqa: S110 - the block ends at its timeout anyway
            pass
    try:
        return await exchange
    except Exception:
        return None
