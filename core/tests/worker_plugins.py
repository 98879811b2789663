"""Badly behaved backends for the worker tests, installable for a real ``conveyor`` process.

``install(folder, name)`` writes the plugin module and a ``.dist-info`` with its
``conveyor.backends`` entry point into ``folder``; with ``folder`` on
``PYTHONPATH`` the registry finds it like any installed distribution, so the
CLI can open ``NAME://``.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

__all__ = ["PLUGINS", "install", "env_with"]

PLUGINS = {
    # poll yields None for ever and never awaits; writes how often it was asked to SPIN_COUNT.
    "spin": """
        import os
        from conveyor import hookimpl

        class Spin:
            Config = None

            def __init__(self, config):
                self.polls = 0

            @hookimpl
            async def poll(self, worker):
                while True:
                    self.polls += 1
                    yield None

            @hookimpl
            async def close(self):
                target = os.environ.get("SPIN_COUNT")
                if target:
                    with open(target, "w") as out:
                        out.write(str(self.polls))
    """,
    # every call fails: poll raises BROKEN_ERROR ("unavailable" or "oserror"), so do the others.
    "broken": """
        import os
        from conveyor import BackendUnavailable, hookimpl

        def _error():
            if os.environ.get("BROKEN_ERROR") == "oserror":
                return OSError(5, "Input/output error")
            return BackendUnavailable("store at /nowhere cannot be reached: mount it and retry")

        class Broken:
            Config = None

            def __init__(self, config):
                pass

            @hookimpl
            async def poll(self, worker):
                raise _error()
                yield None

            @hookimpl
            async def ack(self, task, outcome):
                raise _error()

            @hookimpl
            async def register_worker(self, worker):
                if os.environ.get("BROKEN_REGISTER"):
                    raise _error()
    """,
}


def install(folder: Path, name: str) -> Path:
    """Write plugin ``name`` (a key of ``PLUGINS``) as an installed distribution in ``folder``."""
    module = f"worker_test_{name}"
    (folder / f"{module}.py").write_text(textwrap.dedent(PLUGINS[name]))
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    cls = name.capitalize()
    (info / "entry_points.txt").write_text(f"[conveyor.backends]\n{name} = {module}:{cls}\n")
    return folder


def env_with(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a child that finds the plugins in ``folder`` (and the handlers there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    path = [str(folder), env.get("PYTHONPATH", "")]
    env.update(PYTHONPATH=os.pathsep.join(p for p in path if p), PYTHONUNBUFFERED="1", **extra)
    env.setdefault("COLUMNS", "200")
    return env
