"""The pool, the schema check at first use, retries after a dropped connection.

``conveyor.open`` is synchronous and connects nothing: the first call that needs the
server opens the pool (and applies or checks the schema) in the running event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from conveyor import BackendUnavailable
from conveyor_postgres import schema
from conveyor_postgres.config import PostgresConfig
from conveyor_postgres.listener import Listener, channels
from conveyor_postgres.notices import Notices

__all__ = ["Connection", "TRANSIENT", "reconnect_delay", "where"]

log = logging.getLogger("conveyor.postgres")

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Cursor = psycopg.AsyncCursor[Any]

TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, OSError)
"""Errors after which a call may be made again on another connection."""

SPARE = 2
"""Connections kept out of the pool between calls: a pool checkout and return cost a
one-by-one push about a twentieth of its time (locks, stats, a commit check); a
spare costs a list pop. The pool's own checks then see them only when handed back.
With the lane (below) at most ``pool_size - 1`` are kept aside, so a claim, which
takes its connection from the pool, always gets one once the calls in flight end."""

RETRY_FOR = 30.0
"""Seconds an operation keeps retrying over a dropped connection (a server restart
takes a few) before it gives up with ``BackendUnavailable``."""


def reconnect_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures: 0.05 s doubling to 2 s, ±25%."""
    base: float = min(2.0, 0.05 * 2 ** min(failures - 1, 10))
    return base * random.uniform(0.75, 1.25)


def where(url: str) -> str:
    """``host:port/db`` of ``url``, for messages (never the password)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}{parts.path or '/'}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Connection:
    """What the backends of one store share (``make_shared``): the pool and the listener."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self.schema = config.schema
        self.where = where(config.url)
        # What pg_stat_activity shows for this backend's connections.
        self.application_name = f"conveyor {config.schema}"
        self.pool: AsyncConnectionPool[Conn] | None = None
        self.claims: AsyncConnectionPool[Conn] | None = None
        """Where claims run: the pool itself, or (``durable_claims=false``) a small pool
        whose commits do not wait for the WAL flush."""
        self.listener = Listener(self)
        self.notices = Notices(self, *channels(config.schema), config.notify_window)
        self.users = 0
        self._opening: asyncio.Lock | None = None
        self._spare: list[Conn] = []
        self._spare_max = min(SPARE, config.pool_size - 2)
        self.lane: Cursor | None = None
        """A cursor on one more connection kept aside, for one-by-one pushes alone
        (``pushes``): a push takes it (``None`` meanwhile) for its one statement and
        puts it back, so one that finds it taken goes by ``run``. Its own cursor keeps
        psycopg's adapters for the statement from one push to the next."""

    def unavailable(self, exc: BaseException, doing: str) -> BackendUnavailable:
        """The one-line error for a server that does not answer."""
        return BackendUnavailable(
            f"PostgreSQL at {self.where} cannot be reached while {doing}: {_first_line(exc)};"
            " start the server or fix the URL"
        )

    async def connect(self, **kwargs: Any) -> Conn:
        """A new connection of its own (not from the pool), autocommit."""
        try:
            return await psycopg.AsyncConnection.connect(
                self.config.url,
                autocommit=True,
                connect_timeout=max(1, round(self.config.connect_timeout)),
                application_name=self.application_name,
                **kwargs,
            )
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc, "connecting") from exc

    async def get_pool(self) -> AsyncConnectionPool[Conn]:
        """The pool, opened (and the schema made current or checked) on first use."""
        pool = self.pool
        if pool is not None:
            return pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.pool is None:
                await self._prepare()
                pool = AsyncConnectionPool(
                    self.config.url,
                    min_size=1,
                    max_size=self.config.pool_size,
                    kwargs={"autocommit": True, "application_name": self.application_name},
                    timeout=self.config.connect_timeout,
                    open=False,
                    name=f"conveyor-{self.schema}",
                )
                await pool.open(wait=False)
                self.claims = pool
                if not self.config.durable_claims:
                    claims = AsyncConnectionPool(
                        self.config.url,
                        min_size=1,
                        max_size=max(2, self.config.pool_size // 4),
                        kwargs={
                            "autocommit": True,
                            "application_name": self.application_name,
                            "options": "-c synchronous_commit=off",
                        },
                        timeout=self.config.connect_timeout,
                        open=False,
                        name=f"conveyor-{self.schema}-claims",
                    )
                    await claims.open(wait=False)
                    self.claims = claims
                self.pool = pool
        assert self.pool is not None
        return self.pool

    async def _prepare(self) -> None:
        """Apply the schema (``migrate``), or refuse to go on when it is not current."""
        conn = await self.connect()
        try:
            if self.config.migrate:
                await schema.apply(conn, self.schema)
                return
            version = await schema.current_version(conn, self.schema)
        finally:
            await conn.close()
        if version < schema.VERSION:
            state = "does not exist" if version == 0 else f"is at version {version}"
            raise schema.SchemaOutdated(
                f"schema {self.schema!r} on {self.where} {state}; this conveyor-postgres needs"
                f" version {schema.VERSION}. Run: conveyor migrate -b URL (or open with"
                " migrate=true)"
            )

    async def run(self, call: Callable[[Conn, bool], Awaitable[T]], doing: str) -> T:
        """``call(conn, resent)`` on a pooled connection, again after a dropped one.

        ``resent`` is True from the second try on: the first may have been applied
        with only its reply lost, and callers use it to recognise their own write.
        """
        pool = self.pool or await self.get_pool()
        try:
            conn = self._spare.pop() if self._spare else await pool.getconn()
        except TRANSIENT as exc:
            first: BaseException = exc
        else:
            try:
                result = await call(conn, False)
            except TRANSIENT as exc:
                await pool.putconn(conn)  # the pool discards a broken one
                first = exc
            except BaseException:
                await self.give_back(pool, conn)
                raise
            else:
                await self.give_back(pool, conn)
                return result
        return await self.retry(call, first, doing)

    async def retry(
        self, call: Callable[[Conn, bool], Awaitable[T]], first: BaseException, doing: str
    ) -> T:
        """``call(conn, True)`` until it succeeds (``run`` after its first try failed with
        ``first``, a TRANSIENT error), or ``BackendUnavailable`` after ``RETRY_FOR``."""
        pool = self.pool or await self.get_pool()
        await self._return_spares(pool)  # they may have died with that one
        deadline = time.monotonic() + RETRY_FOR
        failures = 1
        log.warning("PostgreSQL %s: %s; retrying", self.where, _first_line(first))
        while True:
            await pool.check()  # drop the pool's other dead connections rather than try each
            await asyncio.sleep(reconnect_delay(failures))
            try:
                async with pool.connection() as conn:
                    return await call(conn, True)
            except TRANSIENT as exc:
                failures += 1
                if time.monotonic() > deadline:
                    raise self.unavailable(exc, doing) from exc

    async def give_back(self, pool: AsyncConnectionPool[Conn], conn: Conn) -> None:
        """``conn``, taken from ``pool`` (or from what is kept aside), back: kept aside
        again when it is idle and there is room, else to ``pool``."""
        idle = not conn.closed and conn.pgconn.transaction_status == TransactionStatus.IDLE
        if idle and pool is self.pool:
            if self.lane is None:
                self.lane = conn.cursor()
                return
            if len(self._spare) < self._spare_max:
                self._spare.append(conn)
                return
        await pool.putconn(conn)  # the pool resets or discards it

    async def _return_spares(self, pool: AsyncConnectionPool[Conn]) -> None:
        spare, self._spare = self._spare, []
        if self.lane is not None:
            spare.append(self.lane.connection)
            self.lane = None
        for conn in spare:
            await pool.putconn(conn)

    async def release(self) -> None:
        """One user fewer; the pool and listener close when none is left."""
        self.users -= 1
        if self.users <= 0:
            await self.notices.flush()
            await self.listener.close()
            if self.claims is not None and self.claims is not self.pool:
                await self.claims.close()
            self.claims = None
            if self.pool is not None:
                await self._return_spares(self.pool)
                pool, self.pool = self.pool, None
                await pool.close()
