"""Installed-looking plugin distributions on a folder put on PYTHONPATH.

``importlib.metadata`` finds a distribution by its ``*.dist-info`` folder on
``sys.path``, exactly as for one pip installed; no venv or pip run is needed.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["make_site"]

MINIMAL = '''
"""A backend with only the required hook: every capability is missing."""
import attrs
import conveyor


@attrs.frozen
class Config:
    queue: str = "default"


class MinimalBackend:
    Config = Config

    def __init__(self, config):
        self.config = config

    @conveyor.hookimpl
    async def poll(self, worker):
        while True:
            yield None
'''

BROKEN = """
raise RuntimeError("simulated import failure in a third-party plugin")
"""


def _distribution(site: Path, name: str, module: str, entry: str, source: str) -> None:
    info = site / f"{module}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[conveyor.backends]\n{entry}\n")
    (site / f"{module}.py").write_text(source)


def make_site(root: Path) -> Path:
    """A folder with two fake distributions: ``minimal`` (poll only) and ``fakebroken``."""
    site = root / "fake-site"
    site.mkdir()
    _distribution(
        site,
        "conveyor-fake-minimal",
        "conveyor_fake_minimal",
        "minimal = conveyor_fake_minimal:MinimalBackend",
        MINIMAL,
    )
    _distribution(
        site,
        "conveyor-fake-broken",
        "conveyor_fake_broken",
        "fakebroken = conveyor_fake_broken:Backend",
        BROKEN,
    )
    return site
