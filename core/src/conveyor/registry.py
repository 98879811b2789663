"""Discovering installed backends and opening one by name, URL or configuration.

Backends are entry points in the ``conveyor.backends`` group. Listing them reads
package metadata only; a plugin is imported when it is asked for, and one that
fails to import is reported with its distribution, never breaking the others.
Observers (cross-cutting plugins, entry-point group ``conveyor.plugins`` or
``registry.register``) are added to every backend opened afterwards.
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import SplitResult

import attrs

from conveyor.backend import Backend
from conveyor.capability import Capability
from conveyor.codec import Codec
from conveyor.config import configured_target, parse_target, query_params, structure_config
from conveyor.errors import ConfigError, PluginLoadError, UnknownBackend
from conveyor.plugin import capabilities_of, implemented_hooks

__all__ = ["BackendFactory", "BackendInfo", "Registry", "BACKENDS_GROUP", "OBSERVERS_GROUP"]

BACKENDS_GROUP = "conveyor.backends"
OBSERVERS_GROUP = "conveyor.plugins"


class BackendFactory(Protocol):
    """What a ``conveyor.backends`` entry point names: usually the plugin class itself.

    ``Config`` is an attrs class (or ``None``); calling the factory with a
    ``Config`` instance returns the plugin object. An optional
    ``config_from_url(parts)`` maps the URL's host and path to config keys
    (query parameters are added by the registry).
    """

    Config: type | None

    def __call__(self, config: Any) -> object: ...


@attrs.frozen
class BackendInfo:
    """An installed backend, known from its entry point alone."""

    name: str
    distribution: str
    version: str
    value: str
    entry_point: metadata.EntryPoint = attrs.field(repr=False, eq=False)

    def load(self) -> BackendFactory:
        """Import the plugin; ``PluginLoadError`` with the distribution if that fails."""
        try:
            factory: BackendFactory = self.entry_point.load()
        except Exception as exc:  # any import failure is the plugin's, not ours
            raise PluginLoadError(self.name, self.distribution, exc) from exc
        return factory

    def capabilities(self) -> frozenset[Capability]:
        """The capabilities its plugin class declares (imports it)."""
        factory = self.load()
        declared = getattr(factory, "declared_capabilities", None)
        if declared is not None:
            return frozenset(Capability.parse(c) for c in declared)
        return capabilities_of(implemented_hooks(factory))


class Registry:
    """The installed backends and observers; ``conveyor.open`` uses the default one."""

    def __init__(self, entry_points: Sequence[metadata.EntryPoint] | None = None) -> None:
        self._given = entry_points
        self._infos: dict[str, BackendInfo] | None = None
        self._factories: dict[str, BackendFactory] = {}
        self._observers: list[object] = []
        self._observers_loaded = False
        self.observer_errors: list[str] = []

    # --- discovery ---------------------------------------------------------------

    def available(self) -> list[BackendInfo]:
        """Every installed backend, by name, without importing any."""
        return sorted(self._discover().values(), key=lambda info: info.name)

    def names(self) -> list[str]:
        """Installed backend names."""
        return sorted(self._discover())

    def info(self, name: str) -> BackendInfo:
        """The installed backend ``name``; ``UnknownBackend`` with suggestions otherwise."""
        infos = self._discover()
        if name not in infos:
            installed = [f"{i.name} ({i.distribution} {i.version})" for i in self.available()]
            closest = difflib.get_close_matches(name, list(infos), n=1)
            raise UnknownBackend(name, installed, closest[0] if closest else None)
        return infos[name]

    def load(self, name: str) -> BackendFactory:
        """Import backend ``name`` (once) and return its factory."""
        if name not in self._factories:
            self._factories[name] = self.info(name).load()
        return self._factories[name]

    def providers(self, capability: Capability) -> list[str]:
        """Installed backends that declare ``capability`` (broken plugins skipped)."""
        found = []
        for info in self.available():
            try:
                if capability in info.capabilities():
                    found.append(info.name)
            except PluginLoadError:
                continue
        return found

    def _discover(self) -> dict[str, BackendInfo]:
        if self._infos is None:
            eps = (
                self._given
                if self._given is not None
                else metadata.entry_points(group=BACKENDS_GROUP)
            )
            infos: dict[str, BackendInfo] = {}
            for ep in eps:
                if ep.name in infos:
                    continue  # the first installed wins; duplicates are a packaging mistake
                dist = ep.dist
                infos[ep.name] = BackendInfo(
                    name=ep.name,
                    distribution=dist.name if dist is not None else "?",
                    version=dist.version if dist is not None else "?",
                    value=ep.value,
                    entry_point=ep,
                )
            self._infos = infos
        return self._infos

    # --- observers -----------------------------------------------------------------

    def register(self, observer: object) -> None:
        """Add a cross-cutting plugin to every backend opened from now on."""
        if observer not in self._observers:
            self._observers.append(observer)

    def unregister(self, observer: object) -> None:
        """Remove an observer added by ``register``."""
        if observer in self._observers:
            self._observers.remove(observer)

    def observers(self) -> list[object]:
        """Registered observers, entry-point ones loaded on first use."""
        if not self._observers_loaded:
            self._observers_loaded = True
            for ep in metadata.entry_points(group=OBSERVERS_GROUP):
                try:
                    self.register(ep.load())
                except Exception as exc:
                    message = f"conveyor plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
                    self.observer_errors.append(message)
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
        return list(self._observers)

    # --- opening ---------------------------------------------------------------------

    def open(
        self,
        target: str | None = None,
        /,
        *,
        codec: Codec | None = None,
        args_type: Any = None,
        **config: Any,
    ) -> Backend:
        """Open a backend from a URL (``json:///var/lib/app/tasks.json?queue=mail``), a
        name plus keyword configuration (``open("memory", queue="mail")``), or, with
        no target, from ``CONVEYOR_BACKEND`` / ``[tool.conveyor] backend``."""
        if target is None:
            target = configured_target()
            if target is None:
                raise ConfigError(
                    "no backend given: pass a URL such as 'json://tasks.json', set"
                    " CONVEYOR_BACKEND, or add 'backend = \"...\"' under [tool.conveyor]"
                    " in pyproject.toml"
                )
        name, parts = parse_target(target)
        factory = self.load(name)
        values = _url_values(name, factory, parts) if parts is not None else {}
        values.update(config)
        config_class = getattr(factory, "Config", None)
        if codec is not None and _takes_codec(config_class):
            # One codec, passed once: a backend whose Config has a ``codec`` field (every
            # BackendConfig) gets it there too, so a pipe hands it to the backend it feeds.
            values.setdefault("codec", codec)
        structured = structure_config(name, config_class, values)
        plugin = factory(structured) if config_class is not None else factory(None)
        return Backend(
            plugin,
            name=name,
            codec=codec,
            observers=self.observers(),
            args_type=args_type,
            providers=self.providers,
        )


def _takes_codec(config_class: type | None) -> bool:
    return (
        config_class is not None
        and attrs.has(config_class)
        and "codec" in attrs.fields_dict(config_class)
    )


def _url_values(name: str, factory: BackendFactory, parts: SplitResult) -> dict[str, Any]:
    from_url: Callable[[SplitResult], Mapping[str, Any]] | None = getattr(
        factory, "config_from_url", None
    )
    values: dict[str, Any] = dict(from_url(parts)) if from_url is not None else {}
    if from_url is None and (parts.netloc or parts.path.strip("/")):
        raise ConfigError(
            f"backend {name!r} takes no host or path in its URL; use {name}:// with query options"
        )
    for key, value in query_params(parts).items():
        if key in values:
            raise ConfigError(f"{key!r} is given both in the URL's path and its query")
        values[key] = value
    return values
