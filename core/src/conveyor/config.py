"""Backend configuration: URLs, keyword arguments, ``CONVEYOR_BACKEND`` and ``pyproject.toml``.

A backend's configuration is an attrs class its plugin names (``Config``). URL
query parameters and keyword arguments are structured into it by cattrs; an
unknown or ill-typed key is a ``ConfigError`` that lists the valid keys.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import attrs
import cattrs
from cattrs.v import format_exception

from conveyor.errors import ConfigError

__all__ = [
    "ENV_VAR",
    "parse_target",
    "query_params",
    "structure_config",
    "describe_fields",
    "configured_target",
]

ENV_VAR = "CONVEYOR_BACKEND"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _describe(exc: BaseException, type_: type | None) -> str:
    # Keep our own explanations (like "not a boolean"); cattrs' generic text otherwise.
    if type(exc) is ValueError and "invalid literal" not in str(exc) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(bool, _bool)
    return converter


_converter = _make_converter()


def parse_target(target: str) -> tuple[str, SplitResult | None]:
    """Split ``target`` into a backend name and, if it is a URL, its parts."""
    if "://" not in target:
        name = target.strip()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"{target!r} is neither a backend name nor a URL (like memory:// or json:///path)"
            )
        return name, None
    try:
        parts = urlsplit(target)
    except ValueError as exc:
        raise ConfigError(f"cannot parse backend URL {target!r}: {exc}") from None
    if not parts.scheme:
        raise ConfigError(f"backend URL {target!r} has no scheme (like memory:// or json://)")
    return parts.scheme.lower(), parts


def query_params(parts: SplitResult) -> dict[str, str]:
    """The URL's query as a dict; a key given twice is an error."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key in params:
            raise ConfigError(f"URL query key {key!r} is given twice; give it once")
        params[key] = value
    return params


def describe_fields(config_class: type | None) -> str:
    """``key (type = default), ...`` for error messages and docs."""
    if config_class is None or not attrs.has(config_class):
        return "none"
    out = []
    for field in attrs.fields(config_class):
        kind = getattr(field.type, "__name__", None) or str(field.type).replace("typing.", "")
        if field.default is attrs.NOTHING:
            out.append(f"{field.name} ({kind}, required)")
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            out.append(f"{field.name} ({kind})")
        else:
            out.append(f"{field.name} ({kind} = {field.default!r})")
    return ", ".join(out)


def structure_config(backend: str, config_class: type | None, values: Mapping[str, Any]) -> Any:
    """``values`` structured into ``config_class``; ``ConfigError`` naming every problem."""
    if config_class is None:
        if values:
            raise ConfigError(
                f"backend {backend!r} takes no configuration, got: {', '.join(sorted(values))}"
            )
        return None
    try:
        return _converter.structure(dict(values), config_class)
    except Exception as exc:
        problems = "; ".join(cattrs.transform_error(exc, "config", _describe))
        raise ConfigError(
            f"invalid configuration for backend {backend!r}: {problems}."
            f" Valid keys: {describe_fields(config_class)}"
        ) from None


def configured_target(start: Path | None = None) -> str | None:
    """The backend configured for this place: ``CONVEYOR_BACKEND``, else the nearest
    ``pyproject.toml`` with ``[tool.conveyor] backend``, else ``None``."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return value
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if not candidate.is_file():
            continue
        try:
            with candidate.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {candidate}: {exc}") from None
        section = data.get("tool", {}).get("conveyor")
        if isinstance(section, dict) and section.get("backend"):
            backend = section["backend"]
            if not isinstance(backend, str):
                raise ConfigError(f"{candidate}: [tool.conveyor] backend must be a string URL")
            return backend
    return None
