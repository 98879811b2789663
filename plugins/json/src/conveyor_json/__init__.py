"""conveyor-json: the embedded durable backend, a JSON journal file shared by processes."""

from conveyor_json.backend import JsonBackend
from conveyor_json.config import JsonConfig
from conveyor_json.errors import (
    CorruptStore,
    ForeignFile,
    NewerFormat,
    StoreBroken,
    StoreError,
    TornTailWarning,
)
from conveyor_json.records import FORMAT, VERSION

__all__ = [
    "FORMAT",
    "VERSION",
    "CorruptStore",
    "ForeignFile",
    "JsonBackend",
    "JsonConfig",
    "NewerFormat",
    "StoreBroken",
    "StoreError",
    "TornTailWarning",
]
