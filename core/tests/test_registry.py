"""Finding, loading and opening backends; what a user sees when that goes wrong."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest

import conveyor
from conveyor import ConfigError, PluginLoadError, Registry, UnknownBackend

GROUP = "conveyor.backends"


def registry_with(*extra: tuple[str, str]) -> Registry:
    installed = list(metadata.entry_points(group=GROUP))
    made = [metadata.EntryPoint(name=n, value=v, group=GROUP) for n, v in extra]
    return Registry(entry_points=installed + made)


def test_unknown_name_lists_installed_backends_and_the_closest() -> None:
    with pytest.raises(UnknownBackend) as info:
        conveyor.open("memroy://")
    message = str(info.value)
    assert "'memroy'" in message
    assert "Did you mean 'memory'?" in message
    assert "memory (conveyor-memory" in message
    assert "pip install conveyor-memroy" in message
    assert info.value.closest == "memory"


def test_unknown_name_without_a_close_match_still_lists_what_is_installed() -> None:
    with pytest.raises(UnknownBackend, match=r"Installed: .*memory") as info:
        conveyor.open("zzzzzz")
    assert info.value.closest is None


def test_listing_does_not_import_plugins() -> None:
    registry = registry_with(("ghost", "conveyor_no_such_module:Backend"))
    names = [info.name for info in registry.available()]
    assert "ghost" in names and "memory" in names


def test_a_broken_plugin_is_reported_with_its_distribution_and_breaks_nothing() -> None:
    registry = registry_with(("ghost", "conveyor_no_such_module:Backend"))
    with pytest.raises(PluginLoadError) as info:
        registry.open("ghost://")
    assert "ghost" in str(info.value)
    assert "ModuleNotFoundError" in str(info.value)
    backend = registry.open("memory://")
    assert backend.name == "memory"
    assert "memory" in registry.providers(conveyor.Capability.PUSH)


def test_not_a_name_nor_a_url() -> None:
    with pytest.raises(ConfigError, match="neither a backend name nor a URL"):
        conveyor.open("memory:/nope")


def test_url_without_scheme() -> None:
    with pytest.raises(ConfigError, match="no scheme"):
        conveyor.open("://x")


def test_backend_info_reports_capabilities_from_the_class() -> None:
    info = {i.name: i for i in conveyor.available()}["memory"]
    caps = info.capabilities()
    assert conveyor.Capability.PUSH in caps and conveyor.Capability.EXPOSE in caps
