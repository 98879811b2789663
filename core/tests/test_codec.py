"""The default JSON codec: round trips, structuring, and limits before decoding."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor import JsonCodec, PayloadError


@attrs.frozen
class Email:
    to: str
    subject: str
    retries: int = 0


@dataclasses.dataclass
class Resize:
    path: str
    width: int
    sent: datetime
    request: uuid.UUID


codec = JsonCodec()


def test_plain_values_round_trip() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "é"}}
    assert codec.decode(codec.encode(value)) == value


def test_attrs_class_round_trips_as_itself() -> None:
    email = Email("a@example.com", "hi")
    assert codec.decode(codec.encode(email), Email) == email


def test_dataclass_with_datetime_and_uuid_round_trips() -> None:
    job = Resize("/x.png", 640, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), uuid.uuid4())
    assert codec.decode(codec.encode(job), Resize) == job


def test_encoding_is_compact_json() -> None:
    assert codec.encode({"a": 1, "b": [1, 2]}) == b'{"a":1,"b":[1,2]}'


def test_wrong_shape_names_the_field() -> None:
    with pytest.raises(PayloadError, match=r"does not fit Email.*payload\.subject"):
        codec.decode(b'{"to": "x"}', Email)


def test_oversized_payload_is_refused_both_ways() -> None:
    small = JsonCodec(max_size=100)
    with pytest.raises(PayloadError, match="over the limit of 100"):
        small.encode("x" * 200)
    with pytest.raises(PayloadError, match="over the limit of 100"):
        small.decode(b'"' + b"x" * 200 + b'"')


def test_default_size_limit_is_one_mebibyte() -> None:
    with pytest.raises(PayloadError, match="1,048,576"):
        codec.decode(b'"' + b"x" * (1 << 20) + b'"')


def test_thousand_deep_nesting_is_refused_before_parsing() -> None:
    deep = b"[" * 1000 + b"]" * 1000
    with pytest.raises(PayloadError, match="nests 1000 levels deep"):
        codec.decode(deep)
    nested: Any = []
    for _ in range(1000):
        nested = [nested]
    with pytest.raises(PayloadError):
        codec.encode(nested)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = "[" * 500
    assert codec.decode(codec.encode({"t": text})) == {"t": text}


def test_huge_integers_are_refused() -> None:
    with pytest.raises(PayloadError):
        codec.decode(b"9" * 5000)
    with pytest.raises(PayloadError):
        codec.encode(10**5000)


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"[1e999]", b'{"x": NaN}'])
def test_nan_and_infinity_are_refused_on_decode(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        codec.decode(raw)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"x": float("-inf")}])
def test_nan_and_infinity_are_refused_on_encode(value: Any) -> None:
    with pytest.raises(PayloadError, match="cannot encode"):
        codec.encode(value)


def test_unencodable_object_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="cannot encode"):
        codec.encode(object())


@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_payload_error_only(raw: bytes) -> None:
    try:
        codec.decode(raw)
    except PayloadError:
        pass


@given(st.binary(max_size=300))
def test_random_bytes_into_a_class_raise_payload_error_only(raw: bytes) -> None:
    try:
        codec.decode(raw, Email)
    except PayloadError:
        pass


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    assert codec.decode(codec.encode(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        "\ud800",
        "ok \udfff",
        ["fine", {"deep": ["\udbff"]}],
        {"key \ud800": 1},
        "\ud83d\ud83d\ude00",  # two highs, then a low: the first high is alone
        "😀\ude00",  # a whole pair, then half of another
        Email("\ud800@example.com", "hi"),
    ],
    ids=["alone", "low", "nested", "in-a-key", "two-highs", "after-a-pair", "attrs-field"],
)
def test_a_lone_surrogate_is_refused_on_encode_wherever_it_is(value: Any) -> None:
    # UTF-8 cannot store it: a store would fail to write it, a terminal to print it.
    with pytest.raises(PayloadError, match=r"lone surrogate \(\\u[dD][0-9a-f]{3}\)"):
        codec.encode(value)


@pytest.mark.parametrize(
    "raw", [b'"\\ud800"', b'"\\uDFFF"', b'["\\ud83d", "\\ude00"]', b'{"\\ud800": 1}', b'"\\ud83dx"']
)
def test_a_lone_surrogate_is_refused_on_decode(raw: bytes) -> None:
    with pytest.raises(PayloadError, match="lone surrogate"):
        codec.decode(raw)


@pytest.mark.parametrize(
    ("value", "raw"),
    [("😀 ok", b'"\\ud83d\\ude00 ok"'), ("\\ud800", b'"\\\\ud800"'), ("é", b'"\\u00e9"')],
    ids=["a-whole-pair", "backslash-u-text", "bmp"],
)
def test_whole_characters_and_backslash_u_text_round_trip(value: str, raw: bytes) -> None:
    assert codec.encode(value) == raw
    assert codec.decode(raw) == value
    assert codec.decode(raw.replace(b"\\ud83d\\ude00", b"\\uD83D\\uDE00")) == value


@given(st.text(), st.integers(0xD800, 0xDFFF), st.integers(min_value=0), st.booleans())
def test_text_with_any_lone_surrogate_anywhere_is_refused(
    text: str, code: int, where: int, in_a_list: bool
) -> None:
    # st.text() never draws surrogates, so the one inserted is always alone.
    where %= len(text) + 1
    value: Any = text[:where] + chr(code) + text[where:]
    with pytest.raises(PayloadError, match="lone surrogate"):
        codec.encode([1, {"v": value}] if in_a_list else value)


@pytest.mark.parametrize(
    "compact",
    [
        b"null",
        b"[1,2]",
        b'{"to":"a@b"}',
        b'"\\u00e9"',
        b'"\\ud800"',
        b"[" * 70 + b"]" * 70,
        b"\xff",
        b"{",
        b"NaN",
        b'{"to":5}',
        b'{"other":1}',
        b"1e999",
        b" 1",
        b"x" * 2000,
    ],
)
@pytest.mark.parametrize("as_type", [Any, dict[str, str], list[int]])
def test_a_prepared_decoder_gives_what_decode_gives_values_and_errors(
    compact: bytes, as_type: Any
) -> None:
    codec = JsonCodec()
    prepared = codec.decoder(as_type)
    try:
        expected: Any = codec.decode(compact, as_type)
    except PayloadError as exc:
        with pytest.raises(PayloadError) as caught:
            prepared(compact)
        assert str(caught.value) == str(exc)
    else:
        assert prepared(compact) == expected


def _stdlib_compact(value: Any) -> bytes:
    text = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


@given(json_values)
def test_encoding_is_the_standard_librarys_compact_json_byte_for_byte(value: Any) -> None:
    # The codec's encoder is built once, without cycle bookkeeping: same text as json.dumps.
    assert codec.encode(value) == _stdlib_compact(value)


def test_a_circular_payload_is_refused_as_circular() -> None:
    # The fast encoder keeps no record of what it entered; the full one says why.
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(PayloadError, match="Circular reference detected"):
        codec.encode(loop)
    looped: dict[str, Any] = {}
    looped["self"] = {"again": looped}
    with pytest.raises(PayloadError, match="Circular reference detected"):
        codec.encode(looped)


def test_a_refused_value_leaves_the_codec_working() -> None:
    loop: list[Any] = []
    loop.append(loop)
    for bad in (loop, float("nan"), object()):
        with pytest.raises(PayloadError):
            codec.encode(bad)
        shared = [1, 2]
        assert codec.encode([shared, shared, {"a": shared}]) == b'[[1,2],[1,2],{"a":[1,2]}]'


@pytest.mark.parametrize(
    "compact", [b'"a\\\\b"', b'"\\u00e9"', b'"\\ud83d\\ude00"', bytearray(b"[1]")]
)
def test_backslashes_and_other_byte_types_decode_through_the_full_path(compact: Any) -> None:
    assert codec.decoder()(compact) == json.loads(bytes(compact))
