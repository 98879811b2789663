"""Every statement the backend runs, formatted once per schema.

Times are parameters from the backend's clock, never the server's ``now()``: the
conformance suite moves a manual clock, and workers on several machines agree on
the one the application configured. Each state change is one statement, so it is
atomic without an explicit transaction and costs one round trip.
"""

from __future__ import annotations

from conveyor_postgres.listener import channels
from conveyor_postgres.records import COLUMNS

__all__ = ["Statements"]

READY = "('Pending', 'Failed')"
HELD = "('Running', 'Queued')"


class Statements:
    """The SQL text of each operation for one schema (named parameters)."""

    def __init__(self, schema: str) -> None:
        t = f'"{schema}".tasks'
        w = f'"{schema}".workers'
        push, fin = channels(schema)
        self.push_channel, self.fin_channel = push, fin
        wake = f"pg_notify('{push}', queue)"

        self.insert = (
            f"WITH i AS (INSERT INTO {t} (id, queue, status, attempt, max_attempts, run_at,"
            " priority, args, meta, name) VALUES (%s, %s, 'Pending', 0, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING queue)"
            f" SELECT {wake} FROM i"
        )
        # The same row without the CTE, the conflict clause or the notification: a
        # push inside the notification window on its first try (see notices).
        self.insert_quiet = (
            f"INSERT INTO {t} (id, queue, status, attempt, max_attempts, run_at,"
            " priority, args, meta, name) VALUES (%s, %s, 'Pending', 0, %s, %s, %s, %s, %s, %s)"
        )
        self.insert_many = (
            f"WITH i AS (INSERT INTO {t} (id, queue, status, attempt, max_attempts, run_at,"
            " priority, args, meta, name) SELECT id, queue, 'Pending', 0, x, r, p, a, m, n"
            " FROM unnest(%s::text[], %s::text[], %s::int[], %s::timestamptz[], %s::bigint[],"
            " %s::bytea[], %s::bytea[], %s::text[]) AS u(id, queue, x, r, p, a, m, n)"
            " ON CONFLICT (id) DO NOTHING RETURNING queue)"
            f" SELECT {wake} FROM (SELECT DISTINCT queue FROM i) d"
        )
        self.copy = (
            f"COPY {t} (id, queue, status, attempt, max_attempts, run_at, priority, args,"
            " meta, name) FROM STDIN (FORMAT BINARY)"
        )
        self.notify = "SELECT pg_notify(%s, %s)"
        self.exists = f"SELECT 1 FROM {t} WHERE id = %s"

        # The claim: one statement. The CTE picks up to n ready tasks in delivery order
        # (tasks_ready index) skipping rows another claim has locked; the UPDATE takes
        # them. A task whose attempts ran out (set by hand) is given up, not run.
        live = "t.attempt < t.max_attempts"
        self.claim = (
            f"WITH c AS (SELECT id FROM {t} WHERE queue = %(q)s AND status IN {READY}"
            " AND run_at <= %(now)s ORDER BY priority DESC, run_at, id LIMIT %(n)s"
            " FOR UPDATE SKIP LOCKED)"
            f" UPDATE {t} t SET"
            f" status = CASE WHEN {live} THEN 'Running' ELSE 'Killed' END,"
            f" attempt = CASE WHEN {live} THEN t.attempt + 1 ELSE t.attempt END,"
            f" last_error = CASE WHEN {live} THEN t.last_error"
            " ELSE 'no attempts left when claimed' END,"
            f" lock_by = CASE WHEN {live} THEN %(w)s END,"
            f" lease_token = CASE WHEN {live} THEN %(tok)s || t.id END,"
            f" lease_until = CASE WHEN {live} THEN %(until)s::timestamptz END,"
            " result = NULL"
            " FROM c WHERE t.id = c.id"
            " RETURNING t.id, t.status, t.attempt, t.max_attempts, t.run_at, t.priority,"
            " t.args, t.last_error, t.meta, t.name"
        )
        self.next_due = f"SELECT min(run_at) FROM {t} WHERE queue = %s AND status IN {READY}"

        # Acks of one event-loop turn, as arrays: one statement for all of them. The
        # token in the WHERE clause is the fence: a row whose token moved on is not
        # touched, and the caller reports StaleLease for it.
        retry_ok = "a.kind = 'retry' AND t.attempt < t.max_attempts"
        self.ack = (
            "WITH a AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[],"
            " %s::bytea[], %s::text[], %s::timestamptz[])"
            " AS a(id, token, kind, result, error, run_at)),"
            f" u AS (UPDATE {t} t SET"
            " status = CASE WHEN a.kind = 'done' THEN 'Done'"
            " WHEN a.kind = 'release' THEN 'Pending'"
            f" WHEN {retry_ok} THEN 'Failed' ELSE 'Killed' END,"
            " result = CASE WHEN a.kind = 'done' THEN a.result ELSE t.result END,"
            " last_error = CASE WHEN a.kind IN ('retry', 'kill') THEN a.error"
            " ELSE t.last_error END,"
            f" run_at = CASE WHEN {retry_ok} THEN a.run_at ELSE t.run_at END,"
            " attempt = CASE WHEN a.kind = 'release' THEN greatest(t.attempt - 1, 0)"
            " ELSE t.attempt END,"
            " lock_by = NULL, lease_token = NULL, lease_until = NULL, last_token = a.token"
            f" FROM a WHERE t.id = a.id AND t.lease_token = a.token AND t.status IN {HELD}"
            " RETURNING t.id, t.status, t.queue)"
            " SELECT id, CASE WHEN status IN ('Done', 'Killed')"
            f" THEN pg_notify('{fin}', '') ELSE pg_notify('{push}', queue) END FROM u"
        )
        # The common batch, every ack a Done: half the arrays, and no notification in
        # the statement (the caller sends the finish notification after the commit,
        # debounced: see notices).
        self.ack_done = (
            "WITH a AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[])"
            " AS a(id, token, result)),"
            f" u AS (UPDATE {t} t SET status = 'Done', result = a.result,"
            " lock_by = NULL, lease_token = NULL, lease_until = NULL, last_token = a.token"
            f" FROM a WHERE t.id = a.id AND t.lease_token = a.token AND t.status IN {HELD}"
            " RETURNING t.id)"
            " SELECT id FROM u"
        )
        self.why = (
            f"SELECT id, status, lease_token, last_token, lock_by FROM {t} WHERE id = ANY(%s)"
        )

        # Heartbeat: only leases still running are extended (an expired one stays
        # expired), by holder, so a worker that claimed again after losing a lease
        # extends its new one.
        self.heartbeat = (
            f"WITH h AS (UPDATE {t} SET lease_until = %(until)s WHERE lock_by = %(w)s"
            f" AND status IN {HELD} AND lease_until > %(now)s RETURNING 1)"
            f" UPDATE {w} SET last_seen = %(now)s WHERE name = %(w)s"
        )
        self.abandon = (
            f"WITH c AS (SELECT id FROM {t} WHERE status IN {HELD} AND lease_until <= %(now)s"
            " ORDER BY lease_until LIMIT %(n)s FOR UPDATE SKIP LOCKED),"
            f" u AS (UPDATE {t} t SET"
            " status = CASE WHEN t.attempt >= t.max_attempts THEN 'Killed' ELSE 'Pending' END,"
            " last_error = format('worker ''%%s'' stopped renewing its lease (attempt %%s)',"
            " t.lock_by, t.attempt),"
            " lock_by = NULL, lease_token = NULL, lease_until = NULL"
            " FROM c WHERE t.id = c.id RETURNING t.status, t.queue)"
            " SELECT count(*), count(CASE WHEN status = 'Killed'"
            f" THEN pg_notify('{fin}', '') ELSE pg_notify('{push}', queue) END) FROM u"
        )

        self.fetch = f"SELECT {COLUMNS} FROM {t} WHERE id = %s"
        self.fetch_locked = f"SELECT {COLUMNS} FROM {t} WHERE id = %s FOR UPDATE"
        self.update = (
            f"UPDATE {t} SET args = %s, priority = %s, run_at = %s, max_attempts = %s,"
            " meta = %s, name = %s, result = %s, last_error = %s, status = %s WHERE id = %s"
        )
        self.reschedule = (
            f"UPDATE {t} SET status = 'Pending', run_at = %s, attempt = %s, lock_by = NULL,"
            " lease_token = NULL, lease_until = NULL, last_token = coalesce(%s, last_token)"
            " WHERE id = %s"
        )
        self.resume = (
            f"WITH u AS (UPDATE {t} SET status = 'Pending', run_at = %s,"
            " attempt = CASE WHEN status = 'Killed' THEN 0"
            " WHEN status IN ('Running', 'Queued') THEN greatest(attempt - 1, 0)"
            " ELSE attempt END,"
            " lock_by = NULL, lease_token = NULL, lease_until = NULL"
            f" WHERE id = %s AND status IN ('Failed', 'Killed', 'Running', 'Queued')"
            f" RETURNING queue) SELECT {wake} FROM u"
        )
        # Vacuum: finished tasks in batches, so no statement holds many row locks or
        # writes a long transaction; SKIP LOCKED leaves rows a racing ack is writing.
        self.vacuum = (
            f"WITH d AS (SELECT id FROM {t} WHERE status IN ('Done', 'Killed') LIMIT %s"
            f" FOR UPDATE SKIP LOCKED) DELETE FROM {t} USING d WHERE {t}.id = d.id"
        )
        self.register = (
            f"INSERT INTO {w} (name, queue, concurrency, started_at, last_seen, layers)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
            " queue = excluded.queue, concurrency = excluded.concurrency,"
            " started_at = excluded.started_at, last_seen = excluded.last_seen,"
            " layers = excluded.layers"
        )
        self.status_of = f"SELECT id, status, result, last_error FROM {t} WHERE id = ANY(%s)"
