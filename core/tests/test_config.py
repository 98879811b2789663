"""Configuration: URL queries and keyword arguments structured into a plugin's attrs class."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

import conveyor
from conveyor import ConfigError
from conveyor.config import ENV_VAR, structure_config
from conveyor.rules import BackendConfig


@attrs.frozen
class Settings:
    path: str
    fsync: bool = True
    lease_seconds: float = 30.0
    retries: int = 3


def test_strings_from_a_url_become_typed_values() -> None:
    got = structure_config("x", Settings, {"path": "/a", "fsync": "false", "lease_seconds": "2.5"})
    assert got == Settings("/a", False, 2.5, 3)


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("YES", True), ("0", False), ("off", False)]
)
def test_booleans_are_parsed_not_truthy(text: str, value: bool) -> None:
    assert structure_config("x", Settings, {"path": "/", "fsync": text}).fsync is value


def test_unknown_key_lists_the_valid_keys_with_types() -> None:
    with pytest.raises(ConfigError) as info:
        structure_config("x", Settings, {"path": "/", "lease_second": "3"})
    message = str(info.value)
    assert "lease_second" in message
    assert "path (str, required)" in message
    assert "lease_seconds (float = 30.0)" in message


def test_ill_typed_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"retries: 'many' is not a whole number\.$"):
        structure_config("x", Settings, {"path": "/", "retries": "many"})
    with pytest.raises(ConfigError, match="fsync: 'perhaps' is not a boolean"):
        structure_config("x", Settings, {"path": "/", "fsync": "perhaps"})


def test_every_ill_typed_value_is_named_once_and_the_message_ends_once() -> None:
    with pytest.raises(ConfigError) as info:
        structure_config("x", Settings, {"path": "/", "retries": "2.5", "lease_seconds": "soon"})
    message = str(info.value)
    assert "retries: '2.5' is not a whole number" in message
    assert "lease_seconds: 'soon' is not a number" in message
    assert ".." not in message and "@" not in message


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match="path is required"):
        structure_config("x", Settings, {})


@attrs.frozen(kw_only=True)
class Shared(BackendConfig):
    fsync: bool = True


@pytest.mark.parametrize("key", ["queue", "lease_seconds", "fsync"])
def test_an_empty_value_is_refused_with_the_fix_not_taken_as_the_default(key: str) -> None:
    # ?queue= in a URL: once silently the default queue, now an error that says what to do.
    with pytest.raises(ConfigError) as info:
        structure_config("x", Shared, {key: ""})
    message = str(info.value)
    assert f"leave {key} out" in message and "an empty value is not the default" in message
    assert ".." not in message and "@" not in message


def test_a_validator_message_is_kept_as_its_own_sentence() -> None:
    with pytest.raises(ConfigError) as info:
        structure_config("x", Shared, {"lease_seconds": "inf"})
    message = str(info.value)
    assert message.endswith("lease_seconds must be a number of seconds more than 0 and at most"
                            " 31,622,400, not inf.")  # fmt: skip
    assert "Valid keys" not in message  # the key is right, only its value is wrong


def test_url_query_and_keywords_reach_the_plugin() -> None:
    backend = conveyor.open("memory://?queue=mail&lease_seconds=2")
    assert backend.queue == "mail"
    assert backend.plugin.config.lease_seconds == 2.0  # type: ignore[attr-defined]
    assert conveyor.open("memory", queue="jobs").queue == "jobs"


def test_bad_query_key_through_open() -> None:
    with pytest.raises(ConfigError, match=r"lease_second.*Valid keys: queue"):
        conveyor.open("memory://?lease_second=2")


def test_a_query_key_given_twice_is_an_error() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        conveyor.open("memory://?queue=a&queue=b")


def test_a_path_where_the_backend_takes_none() -> None:
    with pytest.raises(ConfigError, match="takes no host or path"):
        conveyor.open("memory://somewhere/else")


def test_environment_variable_names_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "memory://?queue=from-env")
    assert conveyor.open().queue == "from-env"


def test_nearest_pyproject_names_the_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.conveyor]\nbackend = "memory://?queue=from-toml"\n'
    )
    inner = tmp_path / "src" / "app"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    assert conveyor.open().queue == "from-toml"


def test_nothing_configured_says_how_to_configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"CONVEYOR_BACKEND.*tool\.conveyor"):
        conveyor.open()


def test_a_broken_pyproject_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.conveyor\nbackend=")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"pyproject\.toml"):
        conveyor.open()
