"""docs/plugin-authors.md's backend built on conveyor.rules runs and prints what the guide shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).parents[2] / "docs" / "plugin-authors.md"


def _between(text: str, start: str, fence: str) -> str:
    found = re.search(re.escape(start) + r"\n```" + fence + r"\n(.*?)```\n", text, re.S)
    assert found is not None, f"{start} block missing from {GUIDE.name}"
    return found.group(1)


def test_the_guides_dict_backend_prints_what_the_guide_shows(tmp_path: Path) -> None:
    text = GUIDE.read_text()
    script = tmp_path / "dict_backend.py"
    script.write_text(_between(text, "<!-- rules-example -->", "python"))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == _between(text, "<!-- rules-output -->", "text")
