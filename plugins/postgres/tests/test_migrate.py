"""The schema: applied at first use, refused when asked not to migrate, shown or applied
by ``conveyor migrate``; an unreachable server is one line and exit 3."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
import pytest
from conveyor_postgres import VERSION, SchemaOutdated

import conveyor
from conveyor import Backend, BackendUnavailable
from conveyor.cli.app import main


def _tables(url: str, schema: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            " ORDER BY table_name",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


async def test_first_use_applies_the_schema_once_even_when_raced(
    pg_url: str, pg_schema: str, pg_open: Callable[..., Backend]
) -> None:
    backends = [pg_open() for _ in range(4)]
    try:
        # Four first uses at once: the advisory lock lets one create, the others wait.
        await asyncio.gather(*(b.push(i) for i, b in enumerate(backends)))
        assert len(await backends[0].list_tasks(page_size=10)) == 4
    finally:
        for b in backends:
            await b.aclose()
    assert _tables(pg_url, pg_schema) == ["schema_version", "tasks", "workers"]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(f'SELECT version FROM "{pg_schema}".schema_version').fetchall()
    assert rows == [(VERSION,)]


async def test_migrate_false_refuses_a_missing_schema(pg_open: Callable[..., Backend]) -> None:
    backend = pg_open(migrate=False)
    async with backend:
        with pytest.raises(SchemaOutdated, match=r"does not exist.*conveyor migrate -b URL"):
            await backend.push("x")


def test_migrate_command_prints_then_applies(
    pg_url: str, pg_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{pg_url}?schema={pg_schema}"
    assert main(["migrate", "-b", url, "--sql"]) == 0
    out = capsys.readouterr().out
    assert f'CREATE TABLE "{pg_schema}".tasks' in out and "CREATE INDEX tasks_ready" in out
    assert _tables(pg_url, pg_schema) == [], "--sql changes nothing"
    assert main(["migrate", "-b", url]) == 0
    assert "applied:" in capsys.readouterr().out
    assert _tables(pg_url, pg_schema) == ["schema_version", "tasks", "workers"]
    assert main(["migrate", "-b", url, "--sql"]) == 0
    assert "up to date" in capsys.readouterr().out
    # Now a backend that may not migrate opens it happily.
    assert main(["push", "-b", f"{url}&migrate=false", "1"]) == 0


def test_migrate_on_a_backend_without_a_schema_is_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["migrate", "-b", "memory://"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "migrate" in err and "postgres" in err


UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1"


async def test_unreachable_server_is_backend_unavailable() -> None:
    backend = conveyor.open(UNREACHABLE)
    async with backend:
        with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1/test cannot be reached"):
            await backend.push("x")


def test_unreachable_server_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", "-b", UNREACHABLE, "1"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be reached" in err and "Traceback" not in err
    assert main(["migrate", "-b", UNREACHABLE, "--sql"]) == 3
