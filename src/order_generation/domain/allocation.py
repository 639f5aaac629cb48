"""The exact algorithm behind `rebalance.solve`: per-security terms, and the binding case.

`Book` holds one portfolio's terms in `Decimal` and computes each security's integer band and
the quantity nearest its target. When those nearest quantities overspend, `settle` reduces
the rest to integers: above its lowest allowed quantity, security i can add shares one at a
time, each of weight P_i (its price, scaled to an integer). Every share up to the floor of
the target quantity lowers PD by exactly P_i, so its value is P_i; the one share that crosses
the target, when it is wanted at all, lowers PD by less: V_i = 2·T_i - (2·c_i - 1)·P_i where
c_i is the ceiling of T_i/P_i and 0 < V_i < P_i. Then PD = PD(lower bounds) - total value,
and maximising the value within the cash left after the lower bounds is the bounded knapsack
that `knapsack.fill` solves exactly.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

from order_generation.domain.errors import Infeasible
from order_generation.domain.knapsack import Ladder, fill
from order_generation.domain.models import Position

EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
"""Unlimited precision; any operation that would round raises instead."""

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Book:
    """One portfolio's terms, in the order the result lists them; build under `EXACT`.

    `goals` are the target amounts MV·w_i; `floors` and `ceilings` bound the amount each
    security may hold: MV·max(w_i - l_i, 0) (no quantity is negative) and MV·(w_i + h_i).
    """

    ids: tuple[str, ...]
    prices: tuple[Decimal, ...]
    targets: tuple[Decimal, ...]
    low_drifts: tuple[Decimal, ...]
    high_drifts: tuple[Decimal, ...]
    held: tuple[int, ...]
    cash: Decimal
    mv: Decimal
    goals: tuple[Decimal, ...]
    floors: tuple[Decimal, ...]
    ceilings: tuple[Decimal, ...]

    @classmethod
    def of(
        cls,
        positions: tuple[Position, ...],
        holdings: Mapping[str, int],
        cash: Decimal,
        prices: Mapping[str, Decimal],
    ) -> "Book":
        """Model positions in model order, then held securities the model lacks, by id."""
        in_model = {p.security_id for p in positions}
        extra = sorted([sid for sid in holdings if sid not in in_model])
        zeros = [ZERO] * len(extra)
        ids = tuple([p.security_id for p in positions] + extra)
        targets = tuple([p.target for p in positions] + zeros)
        lows = tuple([p.low_drift for p in positions] + zeros)
        highs = tuple([p.high_drift for p in positions] + zeros)
        mv = cash + sum([q * prices[sid] for sid, q in holdings.items()], ZERO)
        return cls(
            ids=ids,
            prices=tuple([prices[sid] for sid in ids]),
            targets=targets,
            low_drifts=lows,
            high_drifts=highs,
            held=tuple([holdings.get(sid, 0) for sid in ids]),
            cash=cash,
            mv=mv,
            goals=tuple([mv * w for w in targets]),
            floors=tuple(
                [mv * (w - lo) if w > lo else ZERO for w, lo in zip(targets, lows, strict=True)]
            ),
            ceilings=tuple([mv * (w + hi) for w, hi in zip(targets, highs, strict=True)]),
        )

    def lowest(self, i: int) -> int:
        low = self.floors[i]
        if low <= 0:
            return 0
        whole, rest = divmod(low, self.prices[i])
        return int(whole) + (rest != 0)

    def highest(self, i: int) -> int:
        high = self.ceilings[i]
        return int(high // self.prices[i]) if high >= 0 else -1

    def nearest(self) -> tuple[list[int], Decimal]:
        """Per security, the whole quantity nearest its goal within its band; and their cost."""
        quantities = []
        spent = ZERO
        terms = zip(self.goals, self.prices, self.floors, self.ceilings, strict=True)
        for i, (goal, p, low, high) in enumerate(terms):
            whole, rest = divmod(goal, p)
            if rest + rest > p:
                whole += 1
            amount = whole * p
            if not low <= amount <= high:
                whole = Decimal(self._clip(i, int(whole)))
                amount = whole * p
            quantities.append(int(whole))
            spent += amount
        return quantities, spent

    def _clip(self, i: int, n: int) -> int:
        lo, hi = self.lowest(i), self.highest(i)
        if lo > hi:
            raise Infeasible(
                f"no feasible solution exists: security {self.ids[i]} cannot be held within "
                f"its band [{max(self.floors[i], ZERO)}, {self.ceilings[i]}] "
                f"at price {self.prices[i]}",
                {"solver_status": "infeasible", "security_id": self.ids[i]},
            )
        return min(max(n, lo), hi)


def settle(
    book: Book, nearest: list[int], deadline: float, node_limit: int
) -> tuple[list[int], bool]:
    """Quantities when the nearest ones overspend, and whether the search proved them optimal."""
    lows = [book.lowest(i) for i in range(len(book.ids))]
    capacity = book.mv - sum((lo * p for lo, p in zip(lows, book.prices, strict=True)), ZERO)
    if capacity < 0:
        raise Infeasible(
            f"no feasible solution exists: the lower bounds alone cost {book.mv - capacity}, "
            f"more than the market value {book.mv}",
            {"solver_status": "infeasible", "market_value": str(book.mv)},
        )
    ladders, scale = _ladders(book, lows, nearest, capacity)
    found = fill(ladders, int(capacity.scaleb(scale)), deadline=deadline, node_limit=node_limit)
    return [lo + extra for lo, extra in zip(lows, found.shares, strict=True)], found.proven


def _ladders(
    book: Book, lows: list[int], nearest: list[int], capacity: Decimal
) -> tuple[tuple[Ladder, ...], int]:
    """Knapsack items per security, and the power of ten that makes every amount whole."""
    tops: list[Decimal] = []
    units: list[int] = []
    for target, p, lo, n in zip(book.goals, book.prices, lows, nearest, strict=True):
        crosses = n > lo and n * p > target
        tops.append(2 * target - (2 * n - 1) * p if crosses else ZERO)
        units.append(n - lo - crosses)
    scale = max(_decimals(x) for x in (capacity, *book.prices, *tops))
    ladders = tuple(
        Ladder(int(p.scaleb(scale)), count, int(top.scaleb(scale)))
        for p, count, top in zip(book.prices, units, tops, strict=True)
    )
    return ladders, scale


def _decimals(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
