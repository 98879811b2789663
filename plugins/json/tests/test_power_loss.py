"""Power-loss simulation: whatever was written after the last fsync may be cut or torn."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

from conveyor_json.errors import TornTailWarning

import conveyor
from conveyor import Status, WorkerInfo

TRIALS = 300


async def test_every_fsync_acknowledged_record_survives_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    acked: list[tuple[int, list[str]]] = []  # (file size when the push returned, ids so far)
    ids: list[str] = []
    async with conveyor.open(f"json://{path}") as backend:
        for i in range(40):
            if i % 4 == 0:
                ids += await backend.push_many([{"batch": i, "k": k} for k in range(3)])
            else:
                ids.append(await backend.push({"n": i, "pad": "x" * (i * 7)}))
            acked.append((path.stat().st_size, list(ids)))
    # Then more writes that were never fsync'd: pushes and claims a crash may lose.
    async with conveyor.open(f"json://{path}", fsync=False) as loose:
        await loose.push_many({"unsynced": k} for k in range(10))
        stream = loose.poll(WorkerInfo("w", "default"))
        for _ in range(5):
            assert await anext(stream) is not None
        await stream.aclose()
    full = path.read_bytes()
    lines = full.splitlines(keepends=True)

    rng = random.Random(20261122)
    trial_path = tmp_path / "trial.json"
    for trial in range(TRIALS):
        synced_size, survivors = rng.choice(acked)
        cut = rng.randint(synced_size, len(full))
        torn = full[:cut]
        kind = rng.randrange(3)
        if kind == 1:  # the size grew but the blocks never arrived
            torn += b"\0" * rng.randint(1, 300)
        elif kind == 2:  # part of some record, without its end
            line = rng.choice(lines[1:])
            torn += line[: rng.randint(1, len(line) - 1)]
        trial_path.write_bytes(torn)
        Path(f"{trial_path}.lock").unlink(missing_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TornTailWarning)
            backend = conveyor.open(f"json://{trial_path}")
        async with backend:
            stored = {t.id: t for t in await backend.hooks.list_all_tasks(_everything())}
            missing = [tid for tid in survivors if tid not in stored]
            assert not missing, f"trial {trial}: cut at {cut}, lost {missing}"
            assert all(stored[tid].status in (Status.PENDING, Status.RUNNING) for tid in survivors)
            await backend.push({"after": "power loss"})  # the store takes writes again


def _everything() -> conveyor.Filter:
    return conveyor.Filter(page_size=1000)
