"""Fast paths through mongoeco's per-value conversions, for the embedded server.

mongoeco converts every value of every document several times, in pure Python: from wire
BSON to its own types, to its storage form and back (twice per insert), and to wire BSON
again to answer, each time through a chain of isinstance tests, and bson's own Decimal128
conversions walk the bits one by one. Each function here answers the values a stored run
is made of (dict, list, str, int, float, bool, None, datetime, Decimal128, ObjectId) by
their exact type, and hands every other value to mongoeco's function, so that the answers
stay mongoeco's: `tests/adapters/test_embedded_codec.py` holds each one to the function it
replaces on generated documents.
"""

import datetime
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import bson
import mongoeco.api._async.raw_batch_cursor
import mongoeco.wire.bson_bridge
import mongoeco.wire.protocol
from mongoeco import Decimal128, ObjectId
from mongoeco.core.bson_scalars import INT64_MAX, INT64_MIN, normalize_utc_bson_datetime
from mongoeco.core.codec import DocumentCodec, _InternalBsonArray, _InternalBsonDocument

from order_generation.adapters.decimal128 import decimal_of_bid, to_decimal128

_WIRE = mongoeco.wire.bson_bridge
ORIGINAL_DECODE_WIRE = _WIRE.decode_wire_value
ORIGINAL_ENCODE_WIRE = _WIRE.encode_wire_value
ORIGINAL_ENCODE = DocumentCodec.encode
ORIGINAL_DECODE = DocumentCodec.decode
ORIGINAL_TO_PYMONGO = DocumentCodec.to_pymongo

# Values every one of these conversions hands back as they are.
_ATOMIC = frozenset({str, float, bool, type(None)})
_WIRE_ATOMIC = _ATOMIC | {int, datetime.datetime}
_MARKER = DocumentCodec._MARKER
# mongoeco's internal form: a dict and a list that refuse changes, encoded as dict and list.
_DOCUMENTS: frozenset[type] = frozenset((dict, _InternalBsonDocument))
_ARRAYS: frozenset[type] = frozenset((list, tuple, _InternalBsonArray))
_REMEMBERED = 1 << 16  # Decimal128s kept by their text or bytes (immutable, and repeated)
# Tagged values a stored run holds, read back as mongoeco's decode reads them.
_TAGGED: dict[str, Callable[[Any], Any]] = {
    "decimal128_public": lambda value: _stored_decimal128(value),
    "datetime": datetime.datetime.fromisoformat,
    "objectid": ObjectId,
}


def decode_wire_value(value: Any) -> Any:
    """Wire BSON (as bson decodes it) to mongoeco's values."""
    kind = type(value)
    if kind in _WIRE_ATOMIC:
        return value
    if kind is dict:
        return {key: decode_wire_value(item) for key, item in value.items()}
    if kind is list:
        return [decode_wire_value(item) for item in value]
    if kind is bson.Decimal128:
        return _decimal128_of_bid(value.bid)
    return ORIGINAL_DECODE_WIRE(value)


@lru_cache(maxsize=_REMEMBERED)
def _decimal128_of_bid(bid: bytes) -> Decimal128:
    return Decimal128(decimal_of_bid(bid))


def _stored_decimal128(value: Any) -> Decimal128:
    """Remembered by its text, which it always is where mongoeco wrote it."""
    return _decimal128_of_text(value) if type(value) is str else Decimal128(value)


@lru_cache(maxsize=_REMEMBERED)
def _decimal128_of_text(text: str) -> Decimal128:
    return Decimal128(text)


def encode_wire_value(value: Any) -> Any:
    """mongoeco's values to what bson encodes for the wire."""
    kind = type(value)
    if kind in _WIRE_ATOMIC or kind is bson.Decimal128 or kind is bson.ObjectId:
        return value
    if kind is dict:
        return {key: encode_wire_value(item) for key, item in value.items()}
    if kind is list:
        return [encode_wire_value(item) for item in value]
    if kind is Decimal128:
        return to_decimal128(value.value)
    return ORIGINAL_ENCODE_WIRE(value)


def encode(data: Any) -> Any:
    """A document to mongoeco's storage form (JSON with tagged values)."""
    kind = type(data)
    if kind in _ATOMIC or (kind is int and INT64_MIN <= data <= INT64_MAX):
        return data
    if kind in _DOCUMENTS and all(type(key) is str for key in data):
        encoded = {key: encode(value) for key, value in data.items()}
        if _MARKER in encoded and DocumentCodec._is_tagged_value(encoded):
            return DocumentCodec._tagged_value("dict", encoded)
        return encoded
    if kind in _ARRAYS:
        return [encode(value) for value in data]
    if kind is datetime.datetime:
        return DocumentCodec._tagged_value(
            "datetime", normalize_utc_bson_datetime(data).isoformat()
        )
    if kind is Decimal128:
        return DocumentCodec._tagged_value("decimal128_public", str(data.value))
    if kind is ObjectId:
        return DocumentCodec._tagged_value("objectid", str(data))
    return ORIGINAL_ENCODE(data)


def decode(data: Any, *, preserve_bson_wrappers: bool = False) -> Any:
    """mongoeco's storage form back to its values."""
    kind = type(data)
    if kind is dict and _MARKER in data:
        return _decode_tagged(data, preserve_bson_wrappers)
    if kind is dict:
        return {
            key: decode(value, preserve_bson_wrappers=preserve_bson_wrappers)
            if isinstance(value, dict | list)
            else value
            for key, value in data.items()
        }
    if kind is list:
        return [
            decode(value, preserve_bson_wrappers=preserve_bson_wrappers)
            if isinstance(value, dict | list)
            else value
            for value in data
        ]
    return ORIGINAL_DECODE(data, preserve_bson_wrappers=preserve_bson_wrappers)


def _decode_tagged(data: dict[str, Any], preserve_bson_wrappers: bool) -> Any:
    payload = data[_MARKER]
    if len(data) == 1 and type(payload) is dict and len(payload) == 2 and "value" in payload:
        kind = payload.get("type")
        if type(kind) is str and kind in _TAGGED:
            return _TAGGED[kind](payload["value"])
    return ORIGINAL_DECODE(data, preserve_bson_wrappers=preserve_bson_wrappers)


def to_pymongo(data: Any) -> Any:
    """One of mongoeco's values as the driver's type."""
    if type(data) is Decimal128:
        return to_decimal128(data.value)
    return ORIGINAL_TO_PYMONGO(data)


def install() -> None:
    """Put the fast paths in place of mongoeco's functions, for this whole process."""
    for module in (_WIRE, mongoeco.wire.protocol):
        module.decode_wire_value = decode_wire_value  # type: ignore[attr-defined]
    for module in (_WIRE, mongoeco.wire.protocol, mongoeco.api._async.raw_batch_cursor):
        module.encode_wire_value = encode_wire_value  # type: ignore[attr-defined]
    replacements: dict[str, Callable[..., Any]] = {
        "encode": encode,
        "decode": decode,
        "to_pymongo": to_pymongo,
    }
    for name, function in replacements.items():
        setattr(DocumentCodec, name, staticmethod(function))
