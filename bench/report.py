"""Figures a bench script measured, written as JSON for ``bench/plot.py`` to chart.

Every ``bench_<backend>.py`` records each figure for conveyor and for each peer
it measured in the same run, then calls ``save``. The file is
``bench/results/<backend>.json``: ``{"backend", "when", "load", "figures": [
{"figure", "unit", "higher_is_better", "values": {system: number}}]}``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["Report"]

RESULTS = Path(__file__).resolve().parent / "results"


class Report:
    """The figures of one bench run, grouped by figure then by system."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._figures: dict[str, dict[str, Any]] = {}

    def add(
        self,
        figure: str,
        system: str,
        value: float,
        *,
        unit: str = "tasks/s",
        higher_is_better: bool = True,
    ) -> float:
        """Record ``system``'s ``value`` for ``figure``; return ``value``."""
        entry = self._figures.setdefault(
            figure,
            {"figure": figure, "unit": unit, "higher_is_better": higher_is_better, "values": {}},
        )
        entry["values"][system] = value
        return value

    def save(self) -> Path:
        """Write ``bench/results/<backend>.json`` and return its path."""
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.backend}.json"
        data = {
            "backend": self.backend,
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load": os.getloadavg()[0],
            "figures": list(self._figures.values()),
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path
