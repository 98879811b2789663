"""The plugin-author guide's worked example passes the suite for what it declares.

The example is its own distribution and is not installed by ``make install``;
this runs its own tests in a subprocess from its folder, with its ``src`` on
``PYTHONPATH`` (its conftest builds the ``Backend`` directly, so no entry point
is needed), exactly as an author runs ``pytest`` in a fresh checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "examples" / "sqlite"


def test_the_example_passes_its_own_conformance_run() -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 30, summary
    assert "failed" not in summary and "error" not in summary, summary
    # what it lacks is skipped with the reason, after proving the call raises
    assert "lacks capability 'list_tasks'" in done.stdout
    assert "raises UnsupportedCapability as it should" in done.stdout
    # and what it declares ran: the reopen checks and the model were not skipped
    assert "not reopenable" not in done.stdout
