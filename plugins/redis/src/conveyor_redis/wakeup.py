"""An idle poll's wait that a push hands its task to: one script from push to started task.

An idle poller sends two commands back to back on a connection of its own:

    EVALSHA <tasks.lua> 0 park ...
    BLPOP <queue>hand:<worker> <queue>wake <timeout>

The park script claims as an ordinary claim would; when there is nothing to claim
it registers the worker on the queue's ``parked`` list (with a lease token and
deadline of its own) in the same step, so a push made after the claim found the
queue empty always finds the registration. Such a push of one task claims it
inside the push script for the parked worker, under the registration's token (the
ordinary fenced claim: token, attempt, lease), and puts the claimed record on the
worker's hand list: the BLPOP's reply is the claimed task, with no script run
between push and wake-up. A wait woken by a wake token instead (a push of several
tasks, or into a queue with tasks ready), one that timed out, or one ended by
``CLIENT UNBLOCK`` (a cancelled poll: stop or pause) is followed by the unpark
script, which takes the registration off and gives back whatever a push handed
meanwhile that the BLPOP did not take, claiming after it unless cancelled.
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
        """Send ``commands`` (the park script, then the blocking pop); both replies.

        ``NOSCRIPT`` when the script was not loaded (the pop is ended by dropping
        the connection). Any failure drops the connection (the next wait opens a
        fresh one) and is raised.
        """
        try:
            conn = self._conn
            if conn is None or not conn.is_connected:
                conn = self._conn = self._connection_class(**self._kwargs)
                await conn.connect()
                await conn.send_command("CLIENT", "ID", check_health=False)
                self.client_id = b"%d" % int(await conn.read_response())
            await conn.send_packed_command(commands, check_health=False)
            try:
                parked = await conn.read_response(timeout=self.socket_timeout)
            except NoScriptError:
                await self.close()
                return NOSCRIPT
            return parked, await conn.read_response(timeout=block + self.socket_timeout)
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
