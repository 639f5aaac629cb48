"""Decimal <-> BSON Decimal128 by integer arithmetic on the BID encoding.

bson's own conversions walk the coefficient bit by bit and digit by digit in Python (about
8 us a value here; a stored 100-position portfolio result holds 800 of them). These give the
same encoding and the same Decimal (coefficient and exponent) several times faster, and hand
anything outside the plain case (NaN, infinities, more than 34 digits, an exponent out of
range) to bson, so its checks and errors still apply there. Both remember the last values
they converted: a run repeats its prices, targets and drifts in every portfolio.
"""

from decimal import Decimal
from functools import lru_cache

from bson.decimal128 import Decimal128

_BIAS = 6176  # the exponent bias of IEEE 754 decimal128
_MIN_EXPONENT, _MAX_EXPONENT = -6176, 6111
_MAX_DIGITS = 34
_LOW = (1 << 64) - 1
_SIGN = 1 << 63
_SPECIAL = 0x6000000000000000  # a combination field of 11: infinities, NaNs, big coefficients
_REMEMBERED = 1 << 16  # values each conversion keeps (both sides are immutable)


def to_decimal128(value: Decimal) -> Decimal128:
    """The Decimal128 that `Decimal128(value)` gives, without its bit-by-bit loops."""
    # Keyed by the text: equal Decimals (1.0 and 1.00) are different Decimal128s.
    return _to_decimal128(str(value))


def from_decimal128(value: Decimal128) -> Decimal:
    """The Decimal that `value.to_decimal()` gives, without its byte-by-byte loops."""
    return decimal_of_bid(value.bid)


@lru_cache(maxsize=_REMEMBERED)
def _to_decimal128(text: str) -> Decimal128:
    value = Decimal(text)
    sign, digits, exponent = value.as_tuple()
    if type(exponent) is not int or len(digits) > _MAX_DIGITS:
        return Decimal128(value)
    if not _MIN_EXPONENT <= exponent <= _MAX_EXPONENT:
        return Decimal128(value)
    numerator, denominator = value.as_integer_ratio()
    if exponent < 0:
        coefficient = abs(numerator) * 10**-exponent // denominator
    else:
        coefficient = abs(numerator) // 10**exponent
    high = (exponent + _BIAS) << 49 | coefficient >> 64
    bits = (high | _SIGN if sign else high, coefficient & _LOW)
    # bson documents and accepts (high, low) BID bits here; its type hints only know the
    # (sign, digits, exponent) form. `from_bid` would take twice as long.
    return Decimal128(bits)  # type: ignore[arg-type]


@lru_cache(maxsize=_REMEMBERED)
def decimal_of_bid(bid: bytes) -> Decimal:
    """The Decimal of a Decimal128's 16 BID bytes (`Decimal128.bid`)."""
    high = int.from_bytes(bid[8:], "little")
    if high & _SPECIAL == _SPECIAL:
        return Decimal128.from_bid(bid).to_decimal()
    coefficient = (high & 0x1FFFFFFFFFFFF) << 64 | int.from_bytes(bid[:8], "little")
    if coefficient >= 10**_MAX_DIGITS:  # non-canonical: bson reads it as zero
        return Decimal128.from_bid(bid).to_decimal()
    exponent = (high >> 49 & 0x3FFF) - _BIAS
    return Decimal(f"{'-' if high & _SIGN else ''}{coefficient}E{exponent}")
