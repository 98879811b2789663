"""The json backend's configuration and how its URL maps onto it."""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, unquote

import attrs

from conveyor import ConfigError
from conveyor.rules import BackendConfig, seconds, whole

__all__ = ["JsonConfig", "config_from_url"]


def _path(_: object, __: attrs.Attribute[str], value: str) -> None:
    if type(value) is not str or not value.strip():
        raise ValueError("path must name the store file, e.g. json:///var/lib/app/tasks.json")
    if "\0" in value:
        raise ValueError("path must not contain a NUL character")


@attrs.frozen(kw_only=True)
class JsonConfig(BackendConfig):
    """Settings of a json store; every field but ``clock`` may come from the URL query.

    ``path``: the store file (its directory must exist; not a symbolic link).
    ``queue``, ``lease_seconds``, ``clock``: as every backend (``BackendConfig``).
    ``fsync``: wait for the disk before ``push``/``ack`` return (turning it off
    trades power-loss safety for speed; a killed process still loses nothing).
    ``idle_wait`` (0 to 3,600 s): how long an empty poll waits before reporting
    idle again. ``poll_interval`` (over 0, at most 60 s): how often a waiting
    poll or ``wait_for`` looks at the file for other processes' writes.
    ``compact_threshold`` (1 to 10⁹): superseded records tolerated before the
    journal is rewritten. ``lock_timeout`` (over 0, at most a year): how long a
    call waits for another process's lock before ``LockTimeout``.
    """

    path: str = attrs.field(validator=_path)
    fsync: bool = True
    idle_wait: float = attrs.field(default=1.0, validator=seconds(0, 3600, low_open=False))
    poll_interval: float = attrs.field(default=0.1, validator=seconds(0, 60))
    compact_threshold: int = attrs.field(default=10_000, validator=whole(1, 10**9))
    lock_timeout: float = attrs.field(default=30.0, validator=seconds())


def config_from_url(parts: SplitResult) -> dict[str, Any]:
    """``json:///abs/tasks.json`` and ``json://relative/tasks.json`` to ``{"path": ...}``.

    A percent-encoded ``.`` or ``..`` segment (``%2e%2e``) is refused: decoding
    must not turn a path into one that climbs out of the folder it names.
    """
    raw = parts.netloc + parts.path
    for segment in raw.split("/"):
        decoded = unquote(segment)
        if decoded != segment and (decoded in (".", "..") or "/" in decoded):
            raise ConfigError(
                f"the json URL path segment {segment!r} decodes to {decoded!r}; write the"
                " path with plain '/', '.' and '..' (or better, the resolved path)"
            )
    path = unquote(raw)
    if not path.strip("/"):
        raise ConfigError(
            "a json backend URL needs a file path: json:///absolute/path/tasks.json"
            " or json://relative/path/tasks.json"
        )
    return {"path": path}
