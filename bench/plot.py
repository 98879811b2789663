"""Draw one chart per backend from ``bench/results/<backend>.json``.

Run: bench/.venv/bin/python bench/plot.py  (``make bench`` runs it after the benches)

Each chart has a panel per figure (drain, enqueue, latency, ...) and a bar per
system measured in that run, conveyor first and highlighted, so the standing
against each peer reads at a glance. Written beside the JSON as ``<backend>.png``.
Then one summary, ``summary.png``: every figure of every backend as conveyor's ratio
to each other system in the same run, oriented so that right of 1.0 is conveyor
ahead, whichever way the figure's unit points.
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


def ratios(data: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, ratio) for each conveyor set-up against each other system of each figure;
    > 1 is conveyor ahead."""
    rows = []
    for figure in data["figures"]:
        values: dict[str, float] = figure["values"]
        ours = sorted(s for s in values if _is_ours(s))
        for mine in ours:
            # With one conveyor set-up its name adds nothing; with several it is the point.
            who = f" ({mine})" if len(ours) > 1 else ""
            for system, theirs in sorted(values.items()):
                if _is_ours(system) or not values[mine] or not theirs:
                    continue
                if figure.get("higher_is_better", True):
                    ratio = values[mine] / theirs
                else:
                    ratio = theirs / values[mine]
                rows.append((f"{data['backend']}: {figure['figure']}{who} vs {system}", ratio))
    return rows


def summary(results: list[dict[str, Any]], out: Path) -> None:
    """One horizontal bar per (backend, figure, peer): conveyor's standing in one picture."""
    rows = [row for data in results for row in ratios(data)]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(12, 0.3 * len(rows) + 1.4))
    labels = [label for label, _ in rows]
    values = [value for _, value in rows]
    colors = [OURS if value >= 1 else PEER for value in values]
    # Bars grow from 1.0 either way, so behind reads left and ahead reads right.
    bars = ax.barh(range(len(rows)), [v - 1 for v in values], left=1, color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    span = max(max(values), 1 / min(values)) * 1.6
    ax.set_xlim(1 / span, span)
    ticks = [t for t in (0.01, 0.1, 0.5, 1, 2, 10, 100) if 1 / span <= t <= span]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.bar_label(bars, labels=[f"{v:.2f}x" for v in values], fontsize=7, padding=2)
    ax.set_xlabel("conveyor / other system, same run (right of 1x: conveyor ahead; log scale)")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")  # the longest labels were cut off
    plt.close(fig)


def main() -> int:
    paths = sorted(RESULTS.glob("*.json"))
    if not paths:
        print(f"no results in {RESULTS}; run the bench scripts first", file=sys.stderr)
        return 1
    results = []
    for path in paths:
        data = json.loads(path.read_text())
        if not data.get("figures"):
            print(f"skipped {path}: not in bench/report.py's format", file=sys.stderr)
            continue
        results.append(data)
        out = path.with_suffix(".png")
        draw(data, out)
        print(f"wrote {out}")
    if results:
        summary(results, RESULTS / "summary.png")
        print(f"wrote {RESULTS / 'summary.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
