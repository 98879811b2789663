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
import tomllib
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
    assert not re.search(r"\b\d+ (failed|errors?)\b", summary), summary  # xfailed is fine
    # what it lacks is skipped with the reason, after proving the call raises
    assert "lacks capability 'list_tasks'" in done.stdout
    assert "raises UnsupportedCapability as it should" in done.stdout
    # and what it declares ran: the reopen checks and the model were not skipped
    assert "not reopenable" not in done.stdout


def test_conveyor_check_over_the_examples_entry_point(tmp_path: Path) -> None:
    # Stand in for `pip install`: metadata that declares the pyproject's entry point, on
    # PYTHONPATH beside the example's src, so `conveyor check -b sqlite://...` finds it.
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    points = project["entry-points"]["conveyor.backends"]
    info = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in points.items())
    (info / "entry_points.txt").write_text(f"[conveyor.backends]\n{lines}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(EXAMPLE / "src")])}
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.check", "-b", "sqlite://{tmp}/tasks.db"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rows = {
        cells[0]: cells[1]
        for line in done.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) >= 2
    }
    for capability in ("ack", "push", "fetch_by_id", "vacuum", "resume_by_id", "check_status"):
        assert rows.get(capability) == "pass", (capability, done.stdout)
    assert rows.get("resume_abandoned") == "pass" and rows.get("reopen") == "pass"
    # "known": conveyor.testing.findings F8 (the model reaches F3 in the example)
    assert rows.get("model") in ("pass", "known") and rows.get("backend") == "pass"
    assert rows.get("update") == "skip" and rows.get("list_tasks") == "skip"
