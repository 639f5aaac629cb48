"""The fast Decimal <-> Decimal128 conversions give exactly what bson's own give."""

from decimal import Decimal

import pytest
from bson.decimal128 import Decimal128
from hypothesis import given
from hypothesis import strategies as st

from order_generation.adapters.decimal128 import from_decimal128, to_decimal128

# (sign, digits, exponent): up to 36 digits, exponents around decimal128's limits and near 0
decimals = st.builds(
    lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=36),
    st.one_of(st.integers(-12, 12), st.integers(-6210, 6150)),
)
EDGES = [
    "0",
    "-0",
    "0E-10",
    "-0.000",
    "1E+6111",
    "1E+6112",
    "1E-6176",
    "1E-6177",
    "9" * 34,
    "1" * 35,
    "-" + "9" * 34 + "E-6176",
    "NaN",
    "-sNaN",
    "Infinity",
    "-Infinity",
    "3356336",
    "0.0095",
    "1234.5678",
]


def _bson(value: Decimal) -> Decimal128 | type[Exception]:
    try:
        return Decimal128(value)
    except Exception as error:
        return type(error)


def _same_decimal(left: Decimal, right: Decimal) -> bool:
    if left.is_nan() or right.is_nan():
        return left.is_nan() and right.is_nan() and left.is_signed() == right.is_signed()
    return left.as_tuple() == right.as_tuple()  # coefficient and exponent, not only value


def _check(value: Decimal) -> None:
    expected = _bson(value)
    if isinstance(expected, Decimal128):
        assert to_decimal128(value).bid == expected.bid
        assert _same_decimal(from_decimal128(expected), expected.to_decimal())
    else:
        with pytest.raises(expected):
            to_decimal128(value)


@pytest.mark.parametrize("text", EDGES)
def test_edge_values_convert_as_bson_converts_them(text: str):
    _check(Decimal(text))


@given(decimals)
def test_any_decimal_converts_as_bson_converts_it(value: Decimal):
    _check(value)


def test_a_non_canonical_coefficient_reads_as_bson_reads_it():
    bits = ((6176 << 49) | (10**34 >> 64)) << 64 | (10**34 & ((1 << 64) - 1))
    too_big = Decimal128.from_bid(bits.to_bytes(16, "little"))
    assert _same_decimal(from_decimal128(too_big), too_big.to_decimal())


def test_equal_values_written_differently_keep_their_own_encoding():
    """Remembered conversions are keyed by the digits and exponent, not by the value."""
    written = ["1", "1.0", "1.00", "1E+1", "10", "-0", "0", "0.000"]
    for _ in range(2):  # the second time round, every answer comes from memory
        for text in written:
            value = Decimal(text)
            assert to_decimal128(value).bid == Decimal128(value).bid
            assert str(from_decimal128(Decimal128(value))) == str(Decimal128(value).to_decimal())
