"""Draw one chart per backend from ``bench/results/<backend>.json``.

Run: bench/.venv/bin/python bench/plot.py  (``make bench`` runs it after the benches)

Each chart has a panel per figure (drain, enqueue, latency, ...) and a bar per
system measured in that run, conveyor first and highlighted, so the standing
against each peer reads at a glance. Written beside the JSON as ``<backend>.png``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
OURS = "#1f6feb"
PEER = "#9aa4b1"


def _is_ours(system: str) -> bool:
    return system.startswith("conveyor")


def draw(data: dict[str, Any], out: Path) -> None:
    """One figure file for one backend's results."""
    figures = data["figures"]
    columns = min(3, len(figures))
    rows = math.ceil(len(figures) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, figure in zip(axes.flat, figures, strict=False):
        values: dict[str, float] = figure["values"]
        systems = sorted(values, key=lambda s: (not _is_ours(s), s))
        heights = [values[s] for s in systems]
        colors = [OURS if _is_ours(s) else PEER for s in systems]
        bars = ax.bar(range(len(systems)), heights, color=colors)
        ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right", fontsize=8)
        better = "higher" if figure.get("higher_is_better", True) else "lower"
        ax.set_title(f"{figure['figure']}\n({figure['unit']}, {better} is better)", fontsize=9)
        ax.bar_label(bars, labels=[f"{h:,.3g}" for h in heights], fontsize=7)
        ax.spines[["top", "right"]].set_visible(False)
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(figures) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"conveyor-{data['backend']} beside its peers, one run ({data['when']}, load"
        f" {data['load']:.2f})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    paths = sorted(RESULTS.glob("*.json"))
    if not paths:
        print(f"no results in {RESULTS}; run the bench scripts first", file=sys.stderr)
        return 1
    for path in paths:
        data = json.loads(path.read_text())
        if not data.get("figures"):
            continue
        out = path.with_suffix(".png")
        draw(data, out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
