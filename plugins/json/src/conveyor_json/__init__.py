"""conveyor-json: the embedded durable backend, a JSON journal file shared by processes."""

from conveyor_json.backend import JsonBackend
from conveyor_json.config import JsonConfig
from conveyor_json.errors import (
    BackendInUse,
    CorruptStore,
    DiskFull,
    ForeignFile,
    LinkRefused,
    LockTimeout,
    NewerFormat,
    NotOwner,
    StoreBroken,
    StoreError,
    TornTailWarning,
)
from conveyor_json.records import FORMAT, VERSION

__all__ = [
    "FORMAT",
    "VERSION",
    "BackendInUse",
    "CorruptStore",
    "DiskFull",
    "LinkRefused",
    "LockTimeout",
    "NotOwner",
    "ForeignFile",
    "JsonBackend",
    "JsonConfig",
    "NewerFormat",
    "StoreBroken",
    "StoreError",
    "TornTailWarning",
]
