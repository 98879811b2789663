"""Codecs turn payloads into the compact bytes backends store, and back.

The default, ``JsonCodec``, writes compact JSON through a cattrs converter, so a
handler annotated with an attrs class or dataclass receives that object. Limits
are checked before anything is parsed: size, nesting depth; NaN and Infinity
are refused both ways, and so is a lone surrogate (``"\\ud800"``), a string no
store can write as UTF-8 and no terminal can print. Every failure, whatever the input bytes, is one
``PayloadError`` with a readable message. There is no pickle codec: a user who
wants one writes it against ``Codec`` and names it.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Protocol, runtime_checkable

import cattrs
from cattrs.preconf.json import make_converter

from conveyor.errors import PayloadError

__all__ = ["Codec", "JsonCodec", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_DEPTH", "lone_surrogate"]

DEFAULT_MAX_SIZE = 1 << 20
DEFAULT_MAX_DEPTH = 64

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")
# A \\u escape of half a surrogate pair without its other half beside it. A cheap
# sieve in C: it may also match escaped backslash text ("\\\\ud800"), so a match
# is confirmed by lone_surrogate before anything is refused.
_HALF = (
    r"\\u(?:[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"  # a high half, no low after it
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F])"  # a low half, no high before it
)
_HALF_TEXT = re.compile(_HALF)
_HALF_BYTES = re.compile(_HALF.encode("ascii"))
# ``bytes.__contains__`` tries a bytes argument as a number first and clears the TypeError;
# with the byte's value it is a plain memchr, five times cheaper on short payloads.
_BACKSLASH = ord("\\")
_TEXT_DUMPS = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode


@runtime_checkable
class Codec(Protocol):
    """Encodes payloads to bytes and decodes bytes to a requested type."""

    name: str

    def encode(self, value: Any) -> bytes:
        """The compact form of ``value``; raise ``PayloadError`` if it has none."""
        ...

    def decode(self, compact: bytes, as_type: Any = Any) -> Any:
        """``compact`` read back as ``as_type``; ``PayloadError`` on any failure."""
        ...


def _default_converter() -> cattrs.Converter:
    converter = make_converter()
    # The preconf converter leaves UUIDs alone; as JSON they are strings.
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_structure_hook(uuid.UUID, lambda value, _: uuid.UUID(str(value)))
    return converter


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is out of range (it would be Infinity)")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in payloads (JSON has no NaN or Infinity)")


class JsonCodec:
    """Compact JSON through a cattrs converter (datetimes, UUIDs, attrs classes, dataclasses)."""

    name = "json"

    def __init__(
        self,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        converter: cattrs.Converter | None = None,
    ) -> None:
        self.max_size = max_size
        self.max_depth = max_depth
        self.converter = converter if converter is not None else _default_converter()
        self._dumps = _compact_dumps()
        decoder = json.JSONDecoder(parse_float=_finite, parse_constant=_constant)
        self._scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]
        self._loads = _compact_loads(decoder)

    def encode(self, value: Any) -> bytes:
        """Compact JSON bytes for ``value``; ``PayloadError`` when it cannot be represented."""
        try:
            plain = value
            try:
                text = self._dumps(plain)
            except TypeError:
                # Not plain JSON: let cattrs unstructure attrs classes, datetimes, sets, ...
                plain = self.converter.unstructure(value)
                text = self._dumps(plain)
        except (TypeError, ValueError, RecursionError) as exc:
            raise PayloadError(
                f"cannot encode {type(value).__name__} as JSON: {_reason(exc)}"
            ) from None
        # ASCII output escapes every non-ASCII character, so only text with a backslash
        # (found at memchr speed) can hold a surrogate, and only a sieve hit is checked.
        if "\\" in text and _HALF_TEXT.search(text) and (lone := lone_surrogate(plain)):
            raise PayloadError(
                f"cannot encode {type(value).__name__} as JSON: it holds a lone surrogate"
                f" (\\u{lone}), which is not text UTF-8 can store; such strings come from"
                " bytes decoded with errors='surrogateescape': decode them with"
                " errors='replace', or send the bytes base64-encoded"
            )
        data = text.encode("ascii")
        size = len(data)
        if size > self.max_depth or size > self.max_size:  # else no limit can be reached
            self._check_limits(data)
        return data

    def decode(self, compact: bytes, as_type: Any = Any) -> Any:
        """Parse ``compact`` and structure it as ``as_type`` (``Any``: plain JSON values)."""
        self._check_limits(compact)
        try:
            value = self._loads(bytes(compact).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise PayloadError(
                f"payload is not UTF-8 text: {exc.reason} at byte {exc.start}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise PayloadError(f"payload is not valid JSON: {_reason(exc)}") from None
        lone = _BACKSLASH in compact and _HALF_BYTES.search(compact) and lone_surrogate(value)
        if lone:
            raise PayloadError(
                f"payload holds a lone surrogate (\\u{lone}), which is not text UTF-8 can"
                " store; it was not written by this codec: fix the producer"
            )
        if as_type is Any or as_type is object:
            return value
        try:
            return self.converter.structure(value, as_type)
        except Exception as exc:
            lines = cattrs.transform_error(exc, path="payload")
            name = getattr(as_type, "__name__", repr(as_type))
            raise PayloadError(f"payload does not fit {name}: " + "; ".join(lines)) from None

    def decoder(self, as_type: Any = Any) -> Callable[[bytes], Any]:
        """``decode(compact, as_type)`` prepared once for ``as_type``: same values, same errors.

        A worker calls it per task. Short payloads without a backslash (most of
        them) skip the checks that cannot fail for them: size and depth are bounded
        by the length, and only an escape can hold a surrogate. The structure hook
        for ``as_type`` is looked up here, not per call. Anything else, and any
        failure, goes through ``decode`` itself, so messages are unchanged.
        """
        full = self.decode
        scan = self._scan
        max_size, max_depth = self.max_size, self.max_depth
        plain = as_type is Any or as_type is object
        structure = None if plain else self.converter.get_structure_hook(as_type)

        def decode(compact: bytes) -> Any:
            if type(compact) is not bytes or _BACKSLASH in compact:
                return full(compact, as_type)
            size = len(compact)
            if size > max_depth and (
                size > max_size or compact.count(b"[") + compact.count(b"{") > max_depth
            ):
                return full(compact, as_type)
            try:
                # _compact_loads inlined: one scan of a document with nothing around it.
                text = compact.decode("utf-8")
                value, end = scan(text, 0)
                if end != len(text):
                    return full(compact, as_type)
                return value if structure is None else structure(value, as_type)
            except Exception:  # StopIteration included: not a document at offset 0
                return full(compact, as_type)  # raises the PayloadError that says why

        return decode

    def _check_limits(self, data: bytes) -> None:
        size = len(data)
        if size > self.max_size:
            raise PayloadError(
                f"payload is {size:,} bytes, over the limit of {self.max_size:,};"
                " store large data elsewhere and pass a reference, or raise max_size"
            )
        # Cheap bounds first: depth can never exceed the number of opening brackets,
        # nor the number of bytes.
        if size <= self.max_depth or data.count(b"[") + data.count(b"{") <= self.max_depth:
            return
        depth = deepest = 0
        for bracket in _BRACKET.findall(_STRING.sub(b'""', data)):
            if bracket in b"[{":
                depth += 1
                deepest = max(deepest, depth)
            else:
                depth -= 1
        if deepest > self.max_depth:
            raise PayloadError(
                f"payload nests {deepest} levels deep, over the limit of {self.max_depth};"
                " flatten it or raise max_depth"
            )

    def __repr__(self) -> str:
        return f"JsonCodec(max_size={self.max_size}, max_depth={self.max_depth})"


def _compact_dumps() -> Callable[[Any], str]:
    """``JSONEncoder(allow_nan=False, separators=(",", ":")).encode``, faster per call.

    ``JSONEncoder.encode`` builds its C encoder anew on every call; this one is
    built once, without the circular-reference bookkeeping (a dict per call).
    Whatever it refuses is encoded again by the full encoder, so a value gets the
    same text, and a refused one the same exception (a cycle: "Circular reference
    detected", not the RecursionError the unguarded encoder ends in).
    """
    full: Callable[[Any], str] = json.JSONEncoder(
        allow_nan=False, separators=(",", ":"), ensure_ascii=True
    ).encode
    if c_make_encoder is None:  # no C accelerator (e.g. PyPy): nothing to gain
        return full
    fast = c_make_encoder(
        None, json.JSONEncoder().default, encode_basestring_ascii, None, ":", ",",
        False, False, False,
    )  # fmt: skip
    join = "".join

    def dumps(value: Any) -> str:
        try:
            return join(fast(value, 0))
        except TypeError:
            raise  # an unknown type: the caller's cue to unstructure, as from ``full``
        except Exception:
            return full(value)

    return dumps


def _compact_loads(decoder: json.JSONDecoder) -> Callable[[str], Any]:
    """``decoder.decode``, faster for the compact text this codec writes.

    One scan from offset 0 covers a document without surrounding whitespace;
    anything else (whitespace, trailing data, an error) goes through the full
    ``decode``, so results and error messages are the same.
    """
    full = decoder.decode
    scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]

    def loads(text: str) -> Any:
        try:
            value, end = scan(text, 0)
        except StopIteration:
            return full(text)
        return value if end == len(text) else full(text)

    return loads


def lone_surrogate(value: Any) -> str | None:
    """The hex digits (``d800``) of the first lone surrogate in a plain JSON ``value``
    (in any string, keys included), or ``None`` when UTF-8 can encode all of it."""
    try:
        _TEXT_DUMPS(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{ord(exc.object[exc.start]):04x}"
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it nests too deeply"
    return str(exc) or type(exc).__name__
