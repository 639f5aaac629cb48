"""The exact algorithm behind `rebalance.solve`, in integers: per-security terms, the binding case.

`Book` reads one portfolio into integers once. With s the most decimals of any price or of
cash and d the most decimals of any target (at least TARGET_DIGITS), every amount is a whole
number of 10^-(s + d) dollars: a price p is p·10^(s+d) of them, MV·w is (MV·10^s)·(w·10^d).
So the nearest quantities, the cash spent and PD are exact integer arithmetic, and `Decimal`
is used only to read the input and to write the totals.

Drifts are not read into integers unless needed. Let τ = ⌈max price / 2·MV⌉ in units of
10^-d. A nearest whole quantity is within half a share, so within MV·τ, of its goal, and when
both drifts of a security are at least τ its band (floor ≤ MV·w - MV·τ, ceiling ≥ MV·w + MV·τ)
holds every amount that close to the goal. Comparing the smallest drifts with τ usually proves
that for the whole model at once (`Book.narrow` lists the exceptions); those bands, and any
amount further from its goal, are computed exactly, at whatever scale their drifts need.

When the nearest quantities overspend, `settle` reduces the rest to a knapsack: above its
lowest allowed quantity, security i can add shares one at a time, each of weight P_i (its
price). Every share up to the floor of the target quantity lowers PD by exactly P_i, so its
value is P_i; the one share that crosses the target, when it is wanted at all, lowers PD by
less: V_i = 2·T_i - (2·c_i - 1)·P_i where c_i is the ceiling of T_i/P_i and 0 < V_i < P_i.
Then PD = PD(lower bounds) - total value, and maximising the value within the cash left after
the lower bounds is the bounded knapsack that `knapsack.fill` solves exactly. The knapsack is
divided by the greatest common divisor of all its numbers, so the orders do not depend on how
many decimals the input was written with.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    FloatOperation,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from itertools import repeat
from math import gcd, sumprod

from order_generation.domain.errors import Infeasible, InvalidInput
from order_generation.domain.knapsack import Ladder, fill
from order_generation.domain.models import Position

EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow, FloatOperation],
)
"""Unlimited precision; any operation that would round, or compare a float, raises instead."""

ZERO = Decimal(0)
ZERO4 = Decimal("0.0000")
TARGET_DIGITS = 4
"""Targets are read in units of 10^-4 unless one of them has more decimals."""

_TARGETS: dict[str, tuple[int, int, Decimal | None]] = {}
"""str(target) -> (target·10^4, exponent of the target, the target with exponent -4).
Models repeat few targets and a lookup costs half a conversion; an entry is exact by
construction (`_target`), and the table is bounded."""
_TARGETS_LIMIT = 1 << 14
_NO_EXPONENT = 1 << 62
_EXTRA = (0, 0, ZERO4)


class _TooFine(Exception):
    """A target has more than TARGET_DIGITS decimals."""


@dataclass(frozen=True, slots=True)
class Book:
    """One portfolio's terms, in the order the result lists them.

    The `Decimal` fields are the input as given (0 for the target and drifts of a held
    security the model lacks). With s = `scale` and d = `weight_digits`: `share_units` (the
    prices), `cash_units` and `whole` (MV) are in units of 10^-(s + d) dollars, `mv_units` is
    MV in 10^-s and `target_units` the targets in 10^-d, so MV·w_i is `mv_units` times
    `target_units[i]`. `fours` are the targets written with 4 decimals (None for one that has
    more): when an amount is that close to its goal, actual is the target.

    `tau` (τ) and `slack` (MV·τ) are the drift shortcut of the module docstring; `slack` is -1
    where it does not apply (MV ≤ 0 or a negative target), and `narrow` lists the securities
    with a drift below τ, whose bands are always computed. The exponents are those `Decimal`
    arithmetic on the input gives the totals, so results are written as before (cash 1000
    less 48 shares at 10.5 is 496.0).
    """

    ids: list[str]
    prices: list[Decimal]
    targets: list[Decimal]
    low_drifts: list[Decimal]
    high_drifts: list[Decimal]
    held: list[int]
    cash: Decimal
    mv: Decimal
    scale: int
    weight_digits: int
    target_units: Sequence[int]
    fours: Sequence[Decimal | None]
    share_units: list[int]
    goals: list[int]
    cash_units: int
    mv_units: int
    whole: int
    tau: Decimal
    slack: int
    narrow: list[int]
    cash_exponent: int
    price_exponent: int
    mv_exponent: int
    target_exponent: int

    @classmethod
    def of(
        cls,
        positions: tuple[Position, ...],
        holdings: Mapping[str, int],
        cash: Decimal,
        prices: Mapping[str, Decimal],
    ) -> "Book":
        """Model positions in model order, then held securities the model lacks, by id."""
        with localcontext(EXACT):
            try:
                return cls._read(positions, holdings, cash, prices, TARGET_DIGITS)
            except _TooFine:
                digits = max(-_exponent(p.target, "positions.target") for p in positions)
                return cls._read(positions, holdings, cash, prices, digits)

    @classmethod
    def _read(
        cls,
        positions: tuple[Position, ...],
        holdings: Mapping[str, int],
        cash: Decimal,
        prices: Mapping[str, Decimal],
        digits: int,
    ) -> "Book":
        ids = [p.security_id for p in positions]
        targets = [p.target for p in positions]
        lows = [p.low_drift for p in positions]
        highs = [p.high_drift for p in positions]
        weights = _targets(targets, digits)
        in_model = len(ids)
        if holdings:
            held = list(map(holdings.get, ids, repeat(0)))
            extra = sorted(set(holdings).difference(ids))
            if extra:
                ids += extra
                zeros = [ZERO] * len(extra)
                targets += zeros
                lows += zeros
                highs += zeros
                weights += [_EXTRA] * len(extra)
                held += [holdings[sid] for sid in extra]
        else:
            held = [0] * len(ids)
        target_units, exponents, fours = zip(*weights, strict=True) if weights else ((), (), ())
        price_list = list(map(prices.__getitem__, ids))

        every_price = sum(price_list, ZERO)
        cash_exponent = _exponent(cash, "cash")
        price_exponent = _exponent(every_price, "prices")
        scale = max(0, -min(cash_exponent, price_exponent))
        decimal_unit = Decimal(10 ** (scale + digits))
        share_units = list(map(int, map(decimal_unit.__mul__, price_list)))
        cash_units = int(cash * decimal_unit)
        if sum(share_units) != every_price * decimal_unit or cash_units != cash * decimal_unit:
            raise AssertionError("prices or cash were not read exactly")
        whole = cash_units + dot(held, share_units) if holdings else cash_units
        mv_units = whole // 10**digits
        if not holdings:
            mv_exponent = min(cash_exponent, 0)
        elif cash_exponent <= price_exponent:
            mv_exponent = cash_exponent
        else:
            held_prices = sum([prices[sid] for sid in holdings], ZERO)
            mv_exponent = min(cash_exponent, _exponent(held_prices, "prices"))

        # Comparing as `Decimal` also refuses a float target (FloatOperation), which the table
        # of targets, keyed by str, would otherwise read as the decimal it prints as.
        if min(targets, default=ZERO) >= ZERO and mv_units > 0 and ids:
            least = -(-max(share_units) // (2 * mv_units))
            tau = Decimal(least).scaleb(-digits)
            slack = mv_units * least
            narrow = _narrow(lows[:in_model], highs[:in_model], tau)
            narrow += range(in_model, len(ids))
        else:
            tau, slack, narrow = ZERO, -1, list(range(len(ids)))
        return cls(
            ids=ids,
            prices=price_list,
            targets=targets,
            low_drifts=lows,
            high_drifts=highs,
            held=held,
            cash=cash,
            mv=write(mv_units, scale, mv_exponent),
            scale=scale,
            weight_digits=digits,
            target_units=target_units,
            fours=fours,
            share_units=share_units,
            goals=[mv_units * w for w in target_units],
            cash_units=cash_units,
            mv_units=mv_units,
            whole=whole,
            tau=tau,
            slack=slack,
            narrow=narrow,
            cash_exponent=cash_exponent,
            price_exponent=price_exponent,
            mv_exponent=mv_exponent,
            target_exponent=min(exponents, default=_NO_EXPONENT),
        )

    @property
    def digits(self) -> int:
        """Amounts are whole numbers of 10^-digits dollars."""
        return self.scale + self.weight_digits

    def bounds(self, i: int) -> tuple[int, int, int]:
        """MV·max(w_i - l_i, 0), MV·(w_i + h_i) and the price of security i, exactly, in
        units of 10^-(s + k) with k the most decimals of w_i, l_i and h_i (at least d)."""
        lo, hi = _decimal(self.low_drifts[i]), _decimal(self.high_drifts[i])
        d = self.weight_digits
        low = _drift_units(lo, "positions.low_drift") if d == TARGET_DIGITS else None
        high = _drift_units(hi, "positions.high_drift") if d == TARGET_DIGITS else None
        if low is not None and high is not None:
            k = d
        else:
            k = max(
                d, -_exponent(lo, "positions.low_drift"), -_exponent(hi, "positions.high_drift")
            )
            low, high = _scaled(lo, k), _scaled(hi, k)
        up = 10 ** (k - d)
        w = self.target_units[i] * up
        floor = self.mv_units * (w - low) if w > low else 0
        return floor, self.mv_units * (w + high), self.share_units[i] * up

    def within(self, i: int, amount: int) -> bool:
        """Whether `amount` (in 10^-(s + d)) lies in security i's band."""
        floor, ceiling, share = self.bounds(i)
        amount *= share // self.share_units[i]
        return floor <= amount <= ceiling

    def lowest(self, i: int) -> int:
        floor, _, share = self.bounds(i)
        return -(-floor // share) if floor > 0 else 0

    def highest(self, i: int) -> int:
        _, ceiling, share = self.bounds(i)
        return ceiling // share if ceiling >= 0 else -1

    def nearest(self) -> tuple[list[int], int]:
        """Per security, the whole quantity nearest its goal within its band (of two equally
        near, the lower), and what they cost.

        The nearest whole quantity, ⌊(2·goal + p - 1)/2p⌋, is within half a share of the goal,
        so within `slack` (τ is at least half the largest price): the drift shortcut proves
        its band unless a drift is below τ, and only those bands are read.
        """
        quantities = [
            (goal + goal + share - 1) // (share + share)
            for goal, share in zip(self.goals, self.share_units, strict=True)
        ]
        for i in self.narrow:
            quantities[i] = self._clip(i, quantities[i])
        return quantities, dot(quantities, self.share_units)

    def unproven(self, far: list[int]) -> list[int]:
        """In order, the securities whose band the drift shortcut does not prove: those with
        a drift below τ and those whose amount is `far` (more than `slack`) from the goal."""
        if not self.narrow:
            return far
        return sorted(set(far).union(self.narrow)) if far else self.narrow

    def _clip(self, i: int, n: int) -> int:
        if self.within(i, n * self.share_units[i]):
            return n
        lo, hi = self.lowest(i), self.highest(i)
        if lo > hi:
            low, high = self.band(i)
            raise Infeasible(
                f"no feasible solution exists: security {self.ids[i]} cannot be held within "
                f"its band [{max(low, ZERO)}, {high}] at price {self.prices[i]}",
                {"solver_status": "infeasible", "security_id": self.ids[i]},
            )
        return min(max(n, lo), hi)

    def band(self, i: int) -> tuple[Decimal, Decimal]:
        """Security i's floor and ceiling amounts in `Decimal`, for messages."""
        w, lo, hi = self.targets[i], self.low_drifts[i], self.high_drifts[i]
        with localcontext(EXACT):
            return (self.mv * (w - lo) if w > lo else ZERO), self.mv * (w + hi)

    def goal_decimal(self, i: int) -> Decimal:
        """MV·w_i in `Decimal` (for the MILP)."""
        with localcontext(EXACT):
            return self.mv * self.targets[i]

    def objective_exponent(self) -> int:
        """The exponent of 0 + Σ |MV·w_i - u_i·p_i| computed in `Decimal`."""
        return min(0, self.mv_exponent + self.target_exponent, self.price_exponent)

    def cash_after_exponent(self, quantities: list[int]) -> int:
        """The exponent of cash - Σ Δ_i·p_i over the securities traded."""
        if self.cash_exponent <= self.price_exponent:
            return self.cash_exponent
        traded = [p for p, u, b in zip(self.prices, quantities, self.held, strict=True) if u != b]
        with localcontext(EXACT):
            return min(self.cash_exponent, _exponent(sum(traded[1:], traded[0]), "prices"))


def _narrow(lows: list[Decimal], highs: list[Decimal], tau: Decimal) -> list[int]:
    """The securities with a drift below τ."""
    if not lows or (min(lows) >= tau and min(highs) >= tau):
        return []
    return [i for i, (lo, hi) in enumerate(zip(lows, highs, strict=True)) if lo < tau or hi < tau]


def _decimal(value: Decimal | int) -> Decimal:
    """A drift as given, or an int one (which `Decimal` arithmetic accepts) as a `Decimal`."""
    return Decimal(value) if isinstance(value, int) else value


def _drift_units(value: Decimal, field: str) -> int | None:
    """A drift in units of 10^-4, or None when it has more decimals (or is not a `Decimal`)."""
    if not isinstance(value, Decimal):
        return None
    entry = _TARGETS.get(str(value))
    if entry is None:
        try:
            entry = _target(value, TARGET_DIGITS, field)
        except _TooFine:
            return None
    return entry[0]


def dot(xs: Iterable[int], ys: Iterable[int]) -> int:
    """Σ x·y, exact: `math.sumprod` keeps integers whole (typeshed says float)."""
    total: int = sumprod(xs, ys)  # type: ignore[assignment]
    return total


def write(units: int, scale: int, exponent: int) -> Decimal:
    """units·10^-scale as a `Decimal` with the given exponent, where that is exact."""
    shift = -exponent - scale
    if shift >= 0:
        coefficient = units * 10**shift
    else:
        coefficient, rest = divmod(units, 10**-shift)
        if rest:
            raise AssertionError(f"{units}e-{scale} is not a multiple of 1e{exponent}")
    return Decimal(coefficient).scaleb(exponent, EXACT)


def _target(
    value: Decimal, digits: int, field: str = "positions.target"
) -> tuple[int, int, Decimal | None]:
    """A target (or drift) read exactly in units of 10^-digits; remembered for next time."""
    exponent = _exponent(value, field)
    if exponent < -digits:
        raise _TooFine
    four = (value.quantize(ZERO4, context=EXACT) or ZERO4) if exponent >= -4 else None
    entry = (_scaled(value, digits), exponent, four)
    if digits == TARGET_DIGITS and len(_TARGETS) < _TARGETS_LIMIT:
        _TARGETS[str(value)] = entry
    return entry


def _targets(targets: list[Decimal], digits: int) -> list[tuple[int, int, Decimal | None]]:
    """Every target read by `_target`, through the table when it can."""
    if digits == TARGET_DIGITS:
        try:
            return list(map(_TARGETS.__getitem__, map(str, targets)))
        except KeyError:
            pass
        return [_TARGETS.get(str(w)) or _target(w, digits) for w in targets]
    return [_target(w, digits) for w in targets]


def _scaled(value: Decimal, digits: int) -> int:
    """value·10^digits, which must be whole."""
    return int(value.scaleb(digits, EXACT))


def _exponent(value: Decimal, field: str) -> int:
    exponent = value.as_tuple().exponent if isinstance(value, Decimal) else None
    if not isinstance(exponent, int):
        raise InvalidInput(field, "must be a finite decimal")
    return exponent


def settle(
    book: Book, nearest: list[int], deadline: float, node_limit: int
) -> tuple[list[int], bool]:
    """Quantities when the nearest ones overspend, and whether the search proved them optimal."""
    lows = [book.lowest(i) for i in range(len(book.ids))]
    capacity = book.whole - dot(lows, book.share_units)
    if capacity < 0:
        with localcontext(EXACT):
            cost = sum([lo * p for lo, p in zip(lows, book.prices, strict=True)], ZERO)
            left = book.mv - cost
            raise Infeasible(
                f"no feasible solution exists: the lower bounds alone cost {book.mv - left}, "
                f"more than the market value {book.mv}",
                {"solver_status": "infeasible", "market_value": str(book.mv)},
            )
    ladders, divisor = _ladders(book, lows, nearest, capacity)
    found = fill(ladders, capacity // divisor, deadline=deadline, node_limit=node_limit)
    return [lo + extra for lo, extra in zip(lows, found.shares, strict=True)], found.proven


def _ladders(
    book: Book, lows: list[int], nearest: list[int], capacity: int
) -> tuple[tuple[Ladder, ...], int]:
    """Knapsack items per security, divided by the common divisor of every number."""
    tops: list[int] = []
    units: list[int] = []
    mv = book.mv_units
    for w, share, lo, n in zip(book.target_units, book.share_units, lows, nearest, strict=True):
        goal = mv * w
        crosses = n > lo and n * share > goal
        tops.append(2 * goal - (2 * n - 1) * share if crosses else 0)
        units.append(n - lo - crosses)
    divisor = gcd(capacity, *book.share_units, *tops) or 1
    ladders = tuple(
        Ladder(share // divisor, count, top // divisor)
        for share, count, top in zip(book.share_units, units, tops, strict=True)
    )
    return ladders, divisor
