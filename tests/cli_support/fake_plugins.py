"""Installed-looking plugin distributions on a folder put on PYTHONPATH.

``importlib.metadata`` finds a distribution by its ``*.dist-info`` folder on
``sys.path``, exactly as for one pip installed; no venv or pip run is needed.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["make_site", "make_network_site"]

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

NETWORK = '''
"""A third-party network backend whose server is down, in the ways drivers fail.

``?fail=open``: the constructor raises the driver's own error (a bad URL);
``?fail=driver``: every call raises the driver's own connection error;
``?fail=unavailable``: every call raises ``conveyor.BackendUnavailable``;
``?fail=none``: it works, and ``metrics`` reports ``?rate=`` as SUCCESS_RATE.
"""
import asyncio

import attrs
import conveyor
from conveyor.rules import BackendConfig


class DriverError(Exception):
    """What a database driver raises: not a conveyor error, not an OSError."""


@attrs.frozen(kw_only=True)
class Config(BackendConfig):
    fail: str = "none"
    rate: str = "100.0"


class NetworkBackend:
    Config = Config

    def __init__(self, config):
        self.config = config
        if config.fail == "open":
            raise DriverError("port 99999 is out of range 0-65535")

    def _call(self):
        if self.config.fail == "driver":
            raise DriverError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        if self.config.fail == "unavailable":
            raise conveyor.BackendUnavailable(
                "fakenet 127.0.0.1:1 does not answer (connection refused); start it or fix the URL"
            )

    @conveyor.hookimpl
    async def poll(self, worker):
        while True:
            self._call()
            await asyncio.sleep(0.01)
            yield None

    @conveyor.hookimpl
    async def heartbeat(self, worker):
        self._call()

    @conveyor.hookimpl
    async def push(self, tasks):
        self._call()
        return [t.id for t in tasks]

    @conveyor.hookimpl
    async def metrics(self, queue):
        self._call()
        return [
            conveyor.Statistic("DONE_JOBS", conveyor.StatType.NUMBER, "9999", 1),
            conveyor.Statistic("SUCCESS_RATE", conveyor.StatType.PERCENTAGE, self.config.rate, 2),
        ]

    @conveyor.hookimpl
    async def list_all_tasks(self, filter):
        self._call()
        return []
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


def make_network_site(root: Path) -> Path:
    """A folder with one fake distribution: ``fakenet``, a network backend that fails."""
    site = root / "fake-net-site"
    site.mkdir()
    _distribution(
        site,
        "conveyor-fake-net",
        "conveyor_fake_net",
        "fakenet = conveyor_fake_net:NetworkBackend",
        NETWORK,
    )
    return site


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
