"""One codec, passed once: a pipe encodes and decodes with the codec of the backend it feeds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import ConfigError, JsonCodec, PayloadError


class Tagged:
    """A codec no JSON reader accepts: JSON behind a tag, so a mix-up cannot go unnoticed."""

    name = "tagged"

    def __init__(self) -> None:
        self.json = JsonCodec()

    def encode(self, value: Any) -> bytes:
        return b"tagged:" + self.json.encode(value)

    def decode(self, compact: bytes, as_type: Any = Any) -> Any:
        if not compact.startswith(b"tagged:"):
            raise PayloadError(f"not tagged: {compact[:20]!r}")
        return self.json.decode(compact[len(b"tagged:") :], as_type)


async def handled_by_a_worker(pipe: conveyor.Backend) -> list[Any]:
    seen: list[Any] = []

    async def handler(args: dict[str, int]) -> None:
        seen.append(args)

    worker = conveyor.Worker(pipe, handler, handle_signals=False)
    await asyncio.wait_for(worker.run(burst=True), 60)
    return seen


async def test_the_codec_of_the_backend_fed_is_the_pipes() -> None:
    inner = conveyor.open("memory", codec=Tagged(), idle_wait=0.02)
    async with conveyor.open("pipe", source=[{"n": 1}, {"n": 2}], into=inner) as pipe:
        assert pipe.codec is inner.codec
        assert await handled_by_a_worker(pipe) == [{"n": 1}, {"n": 2}]
        [task, _] = await pipe.list_tasks()
        assert task.args == {"n": 1}


async def test_a_codec_given_to_the_pipe_reaches_a_backend_opened_from_a_url(
    tmp_path: Path,
) -> None:
    codec = Tagged()
    url = f"json://{tmp_path}/tasks.json?idle_wait=0.02"
    async with conveyor.open("pipe", source=[{"n": 3}], into=url, codec=codec) as pipe:
        assert pipe.codec is codec and pipe.plugin.into.codec is codec  # type: ignore[attr-defined]
        assert await handled_by_a_worker(pipe) == [{"n": 3}]
        [task] = await pipe.plugin.into.hooks.list_tasks("default", conveyor.Filter())  # type: ignore[attr-defined]
        assert task.args.startswith(b"tagged:")  # stored by the codec given, once


async def test_two_different_codecs_are_refused() -> None:
    inner = conveyor.open("memory")
    with pytest.raises(ConfigError, match="codec"):
        conveyor.open("pipe", source=[], into=inner, codec=Tagged())
