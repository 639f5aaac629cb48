"""The embedded server's fast paths answer what mongoeco's own functions answer, value for
value and type for type, or fail as they fail."""

import contextlib
import datetime
import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import bson
import mongoeco.api._async.raw_batch_cursor
import mongoeco.wire.bson_bridge
import mongoeco.wire.protocol
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mongoeco import Decimal128, ObjectId
from mongoeco.core.codec import DocumentCodec

from order_generation.adapters import embedded_codec

MODULES = (
    mongoeco.wire.bson_bridge,
    mongoeco.wire.protocol,
    mongoeco.api._async.raw_batch_cursor,
)


@contextlib.contextmanager
def mongoeco_own_functions() -> Iterator[None]:
    """The originals in place, so that their recursion runs the originals too."""
    saved = {m: dict(vars(m)) for m in MODULES}
    codec = {name: vars(DocumentCodec)[name] for name in ("encode", "decode", "to_pymongo")}
    for module in MODULES:
        if "decode_wire_value" in vars(module):
            module.decode_wire_value = embedded_codec.ORIGINAL_DECODE_WIRE  # type: ignore[attr-defined]
        module.encode_wire_value = embedded_codec.ORIGINAL_ENCODE_WIRE  # type: ignore[attr-defined]
    DocumentCodec.encode = staticmethod(embedded_codec.ORIGINAL_ENCODE)  # type: ignore[method-assign]
    DocumentCodec.decode = staticmethod(embedded_codec.ORIGINAL_DECODE)  # type: ignore[method-assign]
    DocumentCodec.to_pymongo = staticmethod(embedded_codec.ORIGINAL_TO_PYMONGO)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for module, names in saved.items():
            for name in ("decode_wire_value", "encode_wire_value"):
                if name in names:
                    setattr(module, name, names[name])
        for name, function in codec.items():
            setattr(DocumentCodec, name, function)


@contextlib.contextmanager
def fast_paths() -> Iterator[None]:
    with mongoeco_own_functions():
        embedded_codec.install()
        yield


def shape(value: Any) -> Any:
    """A value with its type at every level, comparable with ==."""
    if isinstance(value, dict):
        return type(value), [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list | tuple):
        return type(value), [shape(item) for item in value]
    if isinstance(value, Decimal):
        return Decimal, value.as_tuple()
    if isinstance(value, bson.Decimal128):
        return bson.Decimal128, value.bid
    if isinstance(value, Decimal128):
        return Decimal128, value.value.as_tuple()
    if isinstance(value, float) and math.isnan(value):
        return float, "nan"
    return type(value), repr(value)


def outcome(function: Callable[[Any], Any], value: Any) -> Any:
    try:
        return shape(function(value))
    except Exception as error:  # the same failure is the same answer
        return type(error)


def same(function: Callable[[], Callable[[Any], Any]], value: Any) -> None:
    with mongoeco_own_functions():
        expected = outcome(function(), value)
    with fast_paths():
        assert outcome(function(), value) == expected


decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=10),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(
        lambda sign, digits, exponent: Decimal((sign, tuple(int(d) for d in digits), exponent)),
        st.integers(0, 1),
        st.text("0123456789", min_size=1, max_size=36),
        st.integers(-6200, 6200),
    ),
)


def _representable(value: Decimal) -> bool:
    """What a Decimal128 holds: bson and mongoeco both refuse the rest on construction."""
    try:
        bson.Decimal128(value), Decimal128(value)
    except ArithmeticError:
        return False
    return True


decimals = decimals.filter(_representable)
datetimes = st.one_of(
    st.datetimes(),
    st.datetimes(timezones=st.just(datetime.UTC)),
)
scalars = st.one_of(
    st.text(max_size=5),
    st.integers(-(2**64), 2**64),
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(max_size=4),
    datetimes,
    decimals.map(lambda d: bson.Decimal128(d)),
    decimals.map(Decimal128),
    st.builds(bson.ObjectId),
    st.builds(ObjectId),
)
keys = st.one_of(st.text(max_size=4), st.just("$mongoeco"), st.just("type"), st.just("value"))


def documents(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.tuples(children, children),
            st.dictionaries(keys, children, max_size=4),
        ),
        max_leaves=12,
    )


@settings(max_examples=400, deadline=None)
@given(documents(scalars))
def test_wire_decode_and_encode_answer_as_mongoeco(document: Any):
    same(lambda: mongoeco.wire.bson_bridge.decode_wire_value, document)
    same(lambda: mongoeco.wire.bson_bridge.encode_wire_value, document)


@settings(max_examples=400, deadline=None)
@given(documents(scalars))
def test_storage_encode_and_its_decode_answer_as_mongoeco(document: Any):
    same(lambda: DocumentCodec.encode, document)
    with mongoeco_own_functions():
        try:
            stored = DocumentCodec.encode(document)
        except Exception:
            return
    same(lambda: DocumentCodec.decode, stored)
    same(lambda: lambda value: DocumentCodec.decode(value, preserve_bson_wrappers=True), stored)
    same(lambda: DocumentCodec.to_internal, document)
    # An insert serialises the internal form (immutable dict and list subclasses).
    same(lambda: lambda value: DocumentCodec.encode(DocumentCodec.to_internal(value)), document)


@settings(max_examples=200, deadline=None)
@given(scalars)
def test_to_pymongo_answers_as_mongoeco(value: Any):
    same(lambda: DocumentCodec.to_pymongo, value)


def test_the_generated_documents_reach_every_fast_path():
    """Not a vacuous comparison: the fast functions answer these without the originals."""
    with fast_paths():
        wire = {"d": bson.Decimal128("1.50"), "o": bson.ObjectId(), "n": [1, "x", None]}
        own = mongoeco.wire.bson_bridge.decode_wire_value(wire)
        assert type(own["d"]) is Decimal128
        assert own["d"].value == Decimal("1.50")
        stored = DocumentCodec.encode(own)
        assert stored["d"] == {"$mongoeco": {"type": "decimal128_public", "value": "1.50"}}
        back = mongoeco.wire.bson_bridge.encode_wire_value(DocumentCodec.decode(stored))
        assert back["d"] == bson.Decimal128("1.50")
        assert back["n"] == [1, "x", None]


@pytest.mark.parametrize("function", ["decode_wire_value", "encode_wire_value"])
def test_install_replaces_every_reference_the_server_calls(function: str):
    with fast_paths():
        for module in MODULES:
            if function in vars(module):
                assert getattr(module, function) is getattr(embedded_codec, function)
