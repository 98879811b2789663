"""``conveyor backends`` lists installed plugins, their capabilities, and broken ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import conveyor
from conveyor import Capability

sys.path.insert(0, str(Path(__file__).parent))
from cli_support import conveyor as run
from cli_support.fake_plugins import make_site


def test_backends_json_matches_the_registry_and_reports_a_broken_plugin(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    result = run("backends", "--json", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    listed = {item["name"]: item for item in json.loads(result.stdout)}

    memory = listed["memory"]
    info = {i.name: i for i in conveyor.available()}["memory"]
    assert (memory["distribution"], memory["version"]) == (info.distribution, info.version)
    assert memory["capabilities"] == [c.value for c in Capability if c in info.capabilities()]
    assert memory["error"] is None

    assert listed["minimal"]["capabilities"] == []
    assert listed["minimal"]["distribution"] == "conveyor-fake-minimal"

    broken = listed["fakebroken"]
    assert broken["capabilities"] is None
    assert broken["distribution"] == "conveyor-fake-broken"
    assert broken["version"] == "1.2.3"
    assert "RuntimeError: simulated import failure" in broken["error"]


def test_backends_table_has_a_column_per_capability_and_shows_the_error(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    result = run("backends", cwd=tmp_path, env={"PYTHONPATH": str(site), "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("backend "))
    assert len(header.split()) == 1 + len(Capability)
    start = lines.index(header) + 1
    end = lines.index("", start)
    rows = {line.split()[0]: line.split()[1:] for line in lines[start:end]}
    memory_caps = {i.name: i for i in conveyor.available()}["memory"].capabilities()
    assert rows["memory"].count("✓") == len(memory_caps)
    assert rows["minimal"] == ["·"] * len(Capability)
    assert rows["fakebroken"] == ["!"] * len(Capability)
    for capability in Capability:
        assert f"={capability.value}" in result.stdout
    error_line = next(line for line in lines if line.startswith("fakebroken ("))
    assert "conveyor-fake-broken 1.2.3" in error_line
    assert "simulated import failure" in result.stdout
