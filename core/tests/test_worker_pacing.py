"""A backend or handler that never awaits cannot take the worker over (issue 14, item 2).

Each case runs in a real child process: before the fix, the event loop was held
for good, so an in-process test would hang the test run itself.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from worker_plugins import env_with, install

LIMIT = 60  # seconds a child may take before it counts as hung

# A worker over the "spin" backend (poll yields None for ever, never awaiting),
# stopped by another task after STOP_AFTER seconds of its loop's time.
STOP_FROM_A_TASK = textwrap.dedent(
    """
    import asyncio, sys
    import conveyor
    from worker_test_spin import Spin

    async def main():
        plugin = Spin(None)
        backend = conveyor.Backend(plugin, name="spin")

        async def handle(_):
            return None

        worker = conveyor.Worker(backend, handle, handle_signals=False)

        async def stop_later():
            await asyncio.sleep(float(sys.argv[1]))
            worker.stop()

        stopper = asyncio.create_task(stop_later())
        await worker.run()
        await stopper
        print(plugin.polls, flush=True)

    asyncio.run(main())
    """
)


def _finish(child: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return child.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"the child hung for {LIMIT} s; stderr: {err[-2000:]}")


def test_stop_works_over_a_poll_that_never_awaits_and_the_worker_paces_it(
    tmp_path: Path,
) -> None:
    install(tmp_path, "spin")
    child = subprocess.Popen(
        [sys.executable, "-c", STOP_FROM_A_TASK, "0.5"],
        env=env_with(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = _finish(child)
    assert child.returncode == 0, err
    polls = int(out.strip())
    # Paced from 1 ms doubling to 1 s: about ten polls in half a second. A worker that
    # only yielded to the loop between polls would have asked hundreds of thousands of times.
    assert 2 <= polls <= 100, polls


def _cli_worker(folder: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    (folder / "jobs.py").write_text("def handle(args):\n    return args\n")
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli", *args],
        cwd=folder,
        env=env_with(folder, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_conveyor_worker_over_a_poll_that_never_awaits(
    tmp_path: Path, stop: int
) -> None:
    install(tmp_path, "spin")
    count = tmp_path / "polls"
    child = _cli_worker(tmp_path, "-b", "spin://", "worker", "jobs:handle", SPIN_COUNT=str(count))
    assert child.stderr is not None
    first = child.stderr.readline()
    assert "started" in first, first
    time.sleep(0.5)
    child.send_signal(stop)
    _, rest = _finish(child)
    assert child.returncode == 0, rest
    assert "stopped: done 0" in rest and "Traceback" not in rest, rest
    assert int(count.read_text()) <= 200  # paced while it ran


# A worker over the memory backend whose one task's handler holds the event loop
# (HOLD=spin: a CPU loop; HOLD=stubborn: a CPU loop that swallows every exception).
HOLDING_HANDLER = textwrap.dedent(
    """
    import asyncio, json, sys
    import conveyor

    HOLD = sys.argv[1]

    async def main():
        backend = conveyor.open("memory")
        task_id = await backend.push("x")

        async def handle(_):
            print("HOLDING", flush=True)
            while True:
                if HOLD == "stubborn":
                    try:
                        while True:
                            pass
                    except BaseException:
                        pass

        worker = conveyor.Worker(backend, handle, grace_period=600)
        await worker.run()
        task = await backend.fetch_by_id(task_id)
        print(json.dumps({"status": task.status.value, "attempt": task.attempt}), flush=True)

    asyncio.run(main())
    """
)


def _holding(hold: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDING_HANDLER, hold],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "HOLDING"
    return child


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_ends_a_worker_whose_handler_holds_the_loop(stop: int) -> None:
    child = _holding("spin")
    child.send_signal(stop)
    time.sleep(0.3)  # the first one is seen (by Python, not by the held loop) first
    child.send_signal(stop)
    out, err = _finish(child)
    assert child.returncode == 0, err
    # The held task was interrupted and handed back, not lost: it runs again, attempt uncounted.
    assert json.loads(out.strip().splitlines()[-1]) == {"status": "Pending", "attempt": 0}, err
    assert "Traceback" not in err


def test_a_third_signal_ends_the_process_whatever_holds_it() -> None:
    child = _holding("stubborn")
    for _ in range(3):
        child.send_signal(signal.SIGINT)
        time.sleep(0.3)
    _finish(child)
    assert child.returncode == -signal.SIGINT
