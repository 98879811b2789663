"""``conveyor backends``: what is installed and what each backend can do."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import attrs
from rich.text import Text

from conveyor.capability import Capability
from conveyor.cli.layout import Column, print_rows
from conveyor.cli.output import emit_json, stdout
from conveyor.errors import PluginLoadError
from conveyor.registry import BackendInfo, Registry

__all__ = ["Installed", "LABELS", "survey", "run"]

LABELS: dict[Capability, str] = {
    Capability.ACK: "ak",
    Capability.PUSH: "pu",
    Capability.PUSH_WEAK: "pw",
    Capability.FETCH_BY_ID: "fi",
    Capability.UPDATE: "up",
    Capability.RESCHEDULE: "rs",
    Capability.VACUUM: "va",
    Capability.RESUME_BY_ID: "ri",
    Capability.RESUME_ABANDONED: "ra",
    Capability.REGISTER_WORKER: "rw",
    Capability.LIST_TASKS: "lt",
    Capability.LIST_ALL_TASKS: "la",
    Capability.LIST_QUEUES: "lq",
    Capability.LIST_WORKERS: "lw",
    Capability.METRICS: "me",
    Capability.WAIT_FOR: "wf",
    Capability.CHECK_STATUS: "cs",
    Capability.GET_QUEUE: "gq",
    Capability.MAKE_SHARED: "ms",
    Capability.MIGRATE: "mg",
    Capability.EXPOSE: "ex",
}
"""Two-letter column headers: twenty full capability names do not fit a terminal."""


@attrs.frozen
class Installed:
    """One installed backend with its capabilities, or the error that stopped it loading."""

    info: BackendInfo
    capabilities: frozenset[Capability] | None
    error: str | None
    dynamic: bool = False
    """Its plugin declares capabilities that are only known once it is opened (pipe, custom)."""


def survey(registry: Registry) -> list[Installed]:
    """Load each installed backend's plugin class; a broken one is kept with its error."""
    found = []
    for info in registry.available():
        try:
            capabilities = info.capabilities()
            # Plugins that declare their set (even empty) decide the rest when opened.
            dynamic = getattr(info.load(), "declared_capabilities", None) is not None
            found.append(Installed(info, capabilities, None, dynamic))
        except PluginLoadError as exc:
            found.append(Installed(info, None, f"{type(exc.error).__name__}: {exc.error}"))
    return found


def _json(item: Installed) -> dict[str, Any]:
    caps = item.capabilities
    return {
        "name": item.info.name,
        "distribution": item.info.distribution,
        "version": item.info.version,
        "entry_point": item.info.value,
        "capabilities": None if caps is None else [c.value for c in Capability if c in caps],
        "capabilities_set_when_opened": item.dynamic,
        "error": item.error,
    }


def render(items: Sequence[Installed]) -> None:
    """Who provides each backend, the capability matrix with its legend, and load errors."""
    console = stdout()
    if not items:
        console.print("No backends installed. Install one, e.g.: pip install conveyor-memory")
        return
    rows = []
    for item in items:
        caps = item.capabilities
        if caps is None:
            state = "failed to load (below)"
        elif item.dynamic:
            state = "set when opened"
        else:
            state = f"{len(caps)} of {len(LABELS)}"
        rows.append([item.info.name, item.info.distribution, item.info.version, state])
    columns = [Column("name", key=True), Column("distribution", least=10)]
    columns += [Column("version", least=6), Column("capabilities", least=10)]
    print_rows(console, columns, rows, gap=2)
    console.print()
    matrix = [
        Column("backend", key=True),
        *(Column(label, whole=True) for label in LABELS.values()),
    ]
    print_rows(console, matrix, [[item.info.name, *_marks(item)] for item in items])
    console.print()
    legend = ["✓ has it", "· lacks it", "~ depends on how it is opened", "! failed to load."]
    legend += ["Columns:", *(f"{label}={cap.value}" for cap, label in LABELS.items())]
    console.print(Text("  ".join(legend)))
    for item in items:
        if item.error is not None:
            console.print()
            console.print(
                Text.assemble(
                    (item.info.name, "bold red"),
                    f" ({item.info.distribution} {item.info.version},"
                    f" entry point {item.info.value}) failed to load: {item.error}",
                )
            )


def _marks(item: Installed) -> list[str]:
    caps = item.capabilities
    if caps is None:
        return ["!"] * len(LABELS)
    absent = "~" if item.dynamic else "·"
    return ["✓" if cap in caps else absent for cap in LABELS]


def run(args: argparse.Namespace, registry: Registry) -> int:
    """List installed backends; exit 0 even when some failed to load (they are shown)."""
    items = survey(registry)
    if args.json:
        emit_json([_json(item) for item in items])
    else:
        render(items)
    return 0
