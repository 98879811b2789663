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
        problems, unknown = _problems(exc, config_class, values)
        listing = f" Valid keys: {describe_fields(config_class)}" if unknown else ""
        raise ConfigError(
            f"invalid configuration for backend {backend!r}: {'; '.join(problems)}.{listing}"
        ) from None


_KINDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _problems(
    exc: BaseException, config_class: type, values: Mapping[str, Any]
) -> tuple[list[str], bool]:
    """One readable sentence per problem (without a final period), and whether a key
    was unknown (then the valid keys are worth listing)."""
    if not isinstance(exc, cattrs.ClassValidationError):
        return [_sentence(exc, None, values)], False
    named, other = exc.group_exceptions()
    problems: list[str] = []
    unknown = False
    for error, note in named:
        kind = _KINDS.get(note.type) if isinstance(note.type, type) else None
        given = values.get(note.name)
        if isinstance(error, KeyError):
            problems.append(f"{note.name} is required")
        elif type(error) is ValueError and kind is not None and _generic(error):
            problems.append(f"{note.name}: {given!r} is not {kind}{_empty(note.name, given)}")
        elif isinstance(error, cattrs.ClassValidationError):
            problems += cattrs.transform_error(error, f"config.{note.name}")
        else:
            problems.append(f"{note.name}: {_sentence(error, note.name, values)}")
    for error in other:
        if isinstance(error, cattrs.ForbiddenExtraKeysError):
            unknown = True
            keys = ", ".join(sorted(error.extra_fields))
            problems.append(f"unknown key{'s' if len(error.extra_fields) > 1 else ''} {keys}")
        else:
            problems.append(_sentence(error, None, values))
    return problems or [_sentence(exc, None, values)], unknown


def _generic(error: BaseException) -> bool:
    # float()/int()'s own wording, as opposed to a message written for people.
    text = str(error)
    return text.startswith(("could not convert", "invalid literal")) or not text


def _sentence(error: BaseException, name: str | None, values: Mapping[str, Any]) -> str:
    text = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    if name is None:
        # A validator's message starts with the option it is about.
        first = text.split(" ", 1)[0]
        name = first if first in values else None
    return text + (_empty(name, values.get(name)) if name is not None else "")


def _empty(name: str, given: Any) -> str:
    if given != "":
        return ""
    return f" (an empty value is not the default: give one, or leave {name} out)"


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
