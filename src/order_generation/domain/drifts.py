"""The drift report of an answer: a row per security, with actual = u·p/V and actual_drift =
(w - actual)/w rounded half-even to 4 decimals by integer division on the book's units."""

from decimal import Decimal
from functools import cache
from typing import NamedTuple

from order_generation.domain.terms import Book

ZERO4 = Decimal("0.0000")
_MINUS_ZERO4 = Decimal("-0.0000")


class Drift(NamedTuple):
    """One security before and after; actual and actual_drift are rounded to 4 decimals."""

    security_id: str
    price: Decimal
    original_quantity: int
    adjusted_quantity: int
    target: Decimal
    low_drift: Decimal
    high_drift: Decimal
    actual: Decimal
    actual_drift: Decimal
    breached: bool = False
    """Under best-effort bands: the amount after lies outside the band (see `breaches`)."""

    @property
    def original_market_value(self) -> Decimal:
        return self.original_quantity * self.price

    @property
    def adjusted_market_value(self) -> Decimal:
        return self.adjusted_quantity * self.price


def drift_rows(book: Book, quantities: list[int], breached: set[str]) -> list[Drift]:
    """A drift row per security, with actual = u·p/V and actual_drift to 4 decimals."""
    one = 10**-book.weight_exponent
    rows = []
    columns = zip(book.positions, book.prices, book.terms, quantities, strict=True)
    for position, price, term, u in columns:
        a = _round(10_000 * u * term.price, book.value) if book.value > 0 else 0
        rows.append(
            Drift(
                position.security_id,
                price,
                term.held,
                u,
                position.target,
                position.low_drift,
                position.high_drift,
                _four_places(a),
                _drift(term.weight, a, one),
                position.security_id in breached,
            )
        )
    return rows


@cache
def _four_places(n: int) -> Decimal:
    """n·10^-4 as a `Decimal` with 4 decimals (shared: rows repeat few values)."""
    return Decimal(n).scaleb(-4)


def _round(top: int, bottom: int) -> int:
    """top/bottom rounded half-even, for bottom > 0."""
    q, rest = divmod(top, bottom)
    rest += rest
    if rest > bottom or (rest == bottom and q & 1):
        q += 1
    return q


def _drift(weight: int, a: int, one: int) -> Decimal:
    """(w - a/10^4)/w to 4 decimals, half-even, for w = weight/one (0 when w is 0); a
    negative value that rounds to 0 is -0.0000, as `Decimal.quantize` writes it.
    10^4 times it is (10^4·weight - a·one)/weight."""
    top = weight * 10_000 - a * one
    if not weight or not top:  # no target, or actual is the target
        return ZERO4
    if weight < 0:
        top, weight = -top, -weight
    d = _round(top, weight)
    if not d and top < 0:
        return _MINUS_ZERO4
    return _four_places(d)
