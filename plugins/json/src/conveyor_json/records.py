"""The file format: a header line, then one JSON record per line.

Records are plain dicts. In memory, payloads (``args``, ``res``) are the
codec's bytes; on disk a payload that is canonical compact JSON is written
inline as a JSON value (readable, and re-encoded byte for byte on reading),
anything else as base64 under ``args_b64`` / ``res_b64``.
"""

from __future__ import annotations

import base64
import binascii
import json
import json.scanner
from collections.abc import Callable
from typing import Any

from conveyor_json.errors import ForeignFile, NewerFormat

__all__ = [
    "FORMAT",
    "VERSION",
    "MAX_LINE",
    "OPS",
    "header_line",
    "check_header",
    "encode",
    "decode",
    "damaged",
]

FORMAT = "conveyor-json"
VERSION = 3
"""Version 2 added groups (see ``framing``), version 3 snapshot groups (see ``snapshot``);
older stores are read and rewritten as version 3 when opened."""
MAX_LINE = 8 << 20
"""The longest record line written or read: two codec-sized payloads (1 MiB each by
default) in base64 plus metadata fit with room to spare; anything longer is damage."""

OPS = frozenset({"put", "set", "worker", "beat", "tasks", "pay"})
"""Record ops; ``tasks`` and ``pay`` appear only inside a snapshot group (see ``snapshot``)."""
_PAYLOADS = ("args", "res")

_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=True).encode
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_loads = json.JSONDecoder().decode
_c_scanner = getattr(json.scanner, "c_make_scanner", None)
_scan = _c_scanner(json.JSONDecoder()) if _c_scanner is not None else None


def _record(text: str) -> Any:
    """``_loads`` of a record line, calling the C scanner directly: the Python wrapper and
    its two whitespace regexes were a fifth of parsing a short line. Anything unusual
    (whitespace around it, damage) goes through ``_loads`` for its exact complaint."""
    if _scan is not None:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            pass
        else:
            if end == len(text):
                return value
    return _loads(text)


def header_line() -> bytes:
    """The first line of every store."""
    return (_dumps({"format": FORMAT, "version": VERSION}) + "\n").encode("ascii")


def check_header(path: str, line: bytes) -> int:
    """The format version of header ``line``; raises unless this version reads it."""
    if not line.strip():
        raise ForeignFile(
            f"{path} is empty, so it is not a conveyor-json store (a store begins with a"
            " header line); remove the file or point the backend at another path"
        )
    try:
        header = _loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        shown = line[:60].decode("utf-8", "replace")
        raise ForeignFile(
            f"{path} is not a conveyor-json store: its first line ({shown!r}) is not a"
            f' {{"format": "{FORMAT}", ...}} header. Point the backend at another file;'
            " this one was left untouched"
        )
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise ForeignFile(f"{path} has a conveyor-json header with no valid version: {version!r}")
    if version > VERSION:
        raise NewerFormat(
            f"{path} is in conveyor-json format version {version}, newer than version"
            f" {VERSION} that this conveyor-json reads; upgrade conveyor-json to open it"
        )
    return version


_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_tree = (
    None
    if _c_encoder is None or _scan is None
    else _c_encoder(None, None, _quote, None, ":", ",", False, False, False)
)
"""``_dumps``'s own C encoder, built once (``_dumps`` builds one a call) and without the
cycle check: it only re-encodes what the scanner just parsed, a tree of plain JSON."""


def payload(key: str, data: bytes) -> str:
    """``"key":<the JSON>`` when ``data`` is compact JSON, else ``"key_b64":"<base64>"``."""
    try:
        text = data.decode("ascii")
        if _encode_tree is not None and _scan is not None:
            # The same test as below (text _dumps gives back as it is) in half the time:
            # a parse that stops short of the end, or any error, is not compact.
            value, end = _scan(text, 0)
            if end == len(text) and "".join(_encode_tree(value, 0)) == text:
                return f'"{key}":{text}'
        elif _dumps(_loads(text)) == text:
            return f'"{key}":{text}'
    except (UnicodeDecodeError, ValueError, RecursionError, StopIteration, TypeError):
        pass
    return f'"{key}_b64":"{base64.b64encode(data).decode("ascii")}"'


def fragment(line: bytes, key: str) -> bytes:
    """The payload ``key`` of record ``line`` as it would be written (``"key":...`` or
    ``"key_b64":"..."``), without building the bytes in between (a compaction's copy)."""
    try:
        record = _loads(line.decode("utf-8"))
        if key in record:
            return f'"{key}":{_dumps(record[key])}'.encode("ascii")
        encoded = record[key + "_b64"]
        base64.b64decode(encoded, validate=True)
        return f'"{key}_b64":"{encoded}"'.encode("ascii")
    except (UnicodeDecodeError, ValueError, RecursionError, TypeError, KeyError) as exc:
        raise ValueError(f"no {key} in the record ({exc!r:.100})") from None


def encode(record: dict[str, Any]) -> bytes:
    """One record as a line (newline included). Fields that are ``None`` are left out."""
    op = record["op"]
    if op == "set":
        return _encode_set(record)
    if op == "put":
        return _encode_put(record)
    plain = {k: v for k, v in record.items() if v is not None and k not in _PAYLOADS}
    text = _dumps(plain)
    extra = [payload(k, record[k]) for k in _PAYLOADS if record.get(k) is not None]
    if extra:
        text = text[:-1] + "," + ",".join(extra) + "}"
    return (text + "\n").encode("ascii")


def _encode_set(record: dict[str, Any]) -> bytes:
    # The hot record (every claim and ack), written without building a dict to dump.
    get = record.get
    attempt, run_at, until = record["a"], record["at"], get("until")
    if (
        type(attempt) is not int
        or type(run_at) is not int
        or not (until is None or type(until) is int)
    ):
        raise TypeError(f"attempt, run_at and until must be whole numbers: {record!r:.200}")
    text = (
        f'{{"op":"set","id":{_string(record["id"])},"s":{_string(record["s"])},'
        f'"a":{attempt},"at":{run_at}'
    )
    for key in ("by", "tok", "err"):
        value = get(key)
        if value is not None:
            text += f',"{key}":{_string(value)}'
    if until is not None:
        text += f',"until":{until}'
    result = get("res")
    if result is not None:
        text += "," + payload("res", result)
    return (text + "}\n").encode("ascii")


def _encode_put(record: dict[str, Any]) -> bytes:
    get = record.get
    numbers = (record["a"], record["ma"], record["at"], record["p"])
    until = get("until")
    if any(type(n) is not int for n in numbers) or not (until is None or type(until) is int):
        raise TypeError(
            f"attempt, max_attempts, run_at, priority and until must be whole numbers:"
            f" {record!r:.200}"
        )
    text = (
        f'{{"op":"put","id":{_string(record["id"])},"q":{_string(record["q"])},'
        f'"s":{_string(record["s"])},"a":{numbers[0]},"ma":{numbers[1]},"at":{numbers[2]},'
        f'"p":{numbers[3]}'
    )
    meta = get("meta")
    if meta:
        if not isinstance(meta, dict):
            raise TypeError(f"meta must be a mapping, not {meta!r:.100}")
        text += f',"meta":{_dumps(meta)}'
    for key in ("by", "tok", "err", "name"):
        value = get(key)
        if value is not None:
            text += f',"{key}":{_string(value)}'
    if until is not None:
        text += f',"until":{until}'
    for key in _PAYLOADS:
        value = get(key)
        if value is not None:
            text += "," + payload(key, value)
    return (text + "}\n").encode("ascii")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r:.100}")
    return _quote(value)


def decode(line: bytes, where: int | None = None) -> dict[str, Any]:
    """Parse one record line; ``ValueError`` saying why if it is not one.

    With ``where`` (the line's place in the file, see ``entry.ref``), a payload
    is not rebuilt as bytes: it becomes ``where``, to be read back when needed
    (re-encoding every payload was most of the cost of replaying a journal).
    """
    try:
        record = _record(line.decode("utf-8"))
        if not isinstance(record, dict) or record.get("op") not in OPS:
            raise ValueError("not a record (an object with a known 'op')")
        for key in _PAYLOADS:
            if key in record:
                record[key] = _dumps(record[key]).encode("ascii") if where is None else where
            elif key + "_b64" in record:
                data = base64.b64decode(record.pop(key + "_b64"), validate=True)
                record[key] = data if where is None else where
    except (UnicodeDecodeError, ValueError, RecursionError, TypeError, binascii.Error) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    return record


def damaged(path: str, where: str, reason: str) -> str:
    """The message for a damaged record that is not the last one."""
    return (
        f"{path} {where} is damaged ({reason}); the store was not used, so nothing"
        " was lost or reset. If it was cut by a power loss, `python -m conveyor_json repair"
        f" {path}` cuts the store there (keeping a backup and reporting what it cut);"
        " otherwise restore the file from a backup"
    )
