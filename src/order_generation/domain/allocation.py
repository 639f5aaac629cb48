"""The exact algorithm behind `rebalance.solve`: the per-security terms, and the search.

`Book` holds one portfolio's terms in `Decimal` and computes each security's integer band and
the quantity nearest its target. When those nearest quantities overspend, `settle` reduces
the rest to integers: above its lowest allowed quantity, security i can add shares one at a
time, each of weight P_i (its price, scaled to an integer). Every share up to the floor of
the target quantity lowers PD by exactly P_i, so its value is P_i; the one share that crosses
the target, when it is wanted at all, lowers PD by less: V_i = 2·T_i - (2·c_i - 1)·P_i where
c_i is the ceiling of T_i/P_i and 0 < V_i < P_i. Then PD = PD(lower bounds) - total value,
and maximising the value within the cash left after the lower bounds is the whole problem.

The search is a depth-first branch and bound over item groups sorted by value per unit of
weight, with the fractional (LP) relaxation of the remaining groups as its bound, floored
because values are integers. That bound is monotone in the number of shares taken at a
level, so a level stops at the first count whose bound cannot beat the incumbent. A tie
keeps the first optimum found, so the result depends only on the input order.
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
from time import perf_counter

from order_generation.domain.errors import Infeasible
from order_generation.domain.models import Position

EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
"""Unlimited precision; any operation that would round raises instead."""

ZERO = Decimal(0)
_CHECK_EVERY = 1024
_MAX_DEPTH = 400


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
) -> tuple[tuple["Ladder", ...], int]:
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


@dataclass(frozen=True, slots=True)
class Ladder:
    """The shares one security may add above its lower bound, as knapsack items."""

    weight: int
    units: int
    top: int = 0


@dataclass(frozen=True, slots=True)
class Fill:
    """Shares added per ladder, the value they reach, and whether it is proven optimal."""

    shares: tuple[int, ...]
    value: int
    proven: bool
    nodes: int


@dataclass(frozen=True, slots=True)
class _Group:
    ladder: int
    count: int
    weight: int
    value: int


class _Stop(Exception):
    """Unwinds the search when its deadline, node budget or recursion depth is spent."""


class _Proven(Exception):
    """Unwinds the search when the incumbent reaches the root bound."""


def fill(ladders: tuple[Ladder, ...], capacity: int, *, deadline: float, node_limit: int) -> Fill:
    """Choose shares per ladder maximising total value with total weight <= capacity.

    The search stops unproven (`Fill.proven` false, best incumbent kept) at the deadline, at
    node_limit nodes or when it would recurse too deep.
    """
    if capacity < 0:
        raise ValueError("capacity must not be negative")
    groups = _groups(ladders)
    search = _Core(groups, capacity, deadline, node_limit)
    proven = search.run()
    shares = [0] * len(ladders)
    for group, count in zip(groups, search.best_taken, strict=True):
        shares[group.ladder] += count
    return Fill(tuple(shares), search.best_value, proven, search.nodes)


def _groups(ladders: tuple[Ladder, ...]) -> list[_Group]:
    """Whole-value shares first (ratio 1, largest first), then crossing shares by ratio."""
    units = [_Group(i, ld.units, ld.weight, ld.weight) for i, ld in enumerate(ladders) if ld.units]
    units.sort(key=lambda g: (-g.weight, g.ladder))
    tops = [_Group(i, 1, ld.weight, ld.top) for i, ld in enumerate(ladders) if ld.top]
    # Distinct ratios v/w differ by at least 1/(w1*w2), so floor(v*M/w) with M = max(w)^2
    # orders them exactly.
    scale = max((g.weight for g in tops), default=1) ** 2
    tops.sort(key=lambda g: (-(g.value * scale // g.weight), g.ladder))
    return units + tops


class _Core:
    """Expanding-core branch and bound (after Pisinger's expknap), for bounded item groups.

    It starts from the greedy solution, which fills groups in ratio order up to the break
    group b, and searches outward from b: while the load fits it may add shares of groups
    t >= b (ratios falling), while it overflows it must remove shares of groups s <= b
    (ratios rising). The bounds price the free capacity at ratio(t), or the overflow at
    ratio(s), so a search that needs to reach far from b is cut off early.
    """

    def __init__(
        self, groups: list[_Group], capacity: int, deadline: float, node_limit: int
    ) -> None:
        self.counts = [g.count for g in groups]
        self.weights = [g.weight for g in groups]
        self.values = [g.value for g in groups]
        self.capacity = capacity
        self.deadline = deadline
        self.node_limit = node_limit
        self.nodes = 0
        self.greedy = [0] * len(groups)
        self.added = [0] * len(groups)
        self.removed = [0] * len(groups)
        self.best_value = -1
        self.best_taken = list(self.greedy)
        self.root: int | None = None

    def run(self) -> bool:
        """Search until proven optimal (True) or the node budget is spent (False)."""
        value, weight, brk = self._greedy()
        if brk == len(self.counts):
            self._record(value)
            return True
        self.root = value + (self.capacity - weight) * self.values[brk] // self.weights[brk]
        first_removal = brk if self.greedy[brk] else brk - 1
        try:
            self._branch(first_removal, brk, value, weight, 0)
        except _Proven:
            return True
        except _Stop:
            return False
        return True

    def _greedy(self) -> tuple[int, int, int]:
        """Fill in ratio order; returns value, weight and the first group left unfilled."""
        value = weight = 0
        for k, (count, w, v) in enumerate(zip(self.counts, self.weights, self.values, strict=True)):
            take = min(count, (self.capacity - weight) // w)
            self.greedy[k] = take
            value, weight = value + take * v, weight + take * w
            if take < count:
                return value, weight, k
        return value, weight, len(self.counts)

    def _branch(self, s: int, t: int, value: int, weight: int, depth: int) -> None:
        self._count_node(depth)
        if weight <= self.capacity:
            if value > self.best_value:
                self._record(value)
            self._add(s, t, value, weight, depth)
        else:
            self._remove(s, t, value, weight, depth)

    def _add(self, s: int, first: int, value: int, weight: int, depth: int) -> None:
        """Under capacity: try adding shares of group `first`, then of the groups after it."""
        for t in range(first, len(self.counts)):
            v, w = self.values[t], self.weights[t]
            if value + (self.capacity - weight) * v // w <= self.best_value:
                return
            for k in range(1, self.counts[t] - self.greedy[t] + 1):
                load = weight + k * w
                if load > self.capacity and not self._may_remove(s, value + k * v, load):
                    break
                self.added[t] = k
                self._branch(s, t + 1, value + k * v, load, depth + 1)
            self.added[t] = 0

    def _remove(self, first: int, t: int, value: int, weight: int, depth: int) -> None:
        """Over capacity: try removing shares of group `first`, then of the groups before it."""
        for s in range(first, -1, -1):
            if not self._may_remove(s, value, weight):
                return
            v, w = self.values[s], self.weights[s]
            for k in range(1, self.greedy[s] + 1):
                load = weight - k * w
                if load <= self.capacity and not self._may_add(t, value - k * v, load):
                    break
                self.removed[s] = k
                self._branch(s - 1, t, value - k * v, load, depth + 1)
            self.removed[s] = 0

    def _may_remove(self, s: int, value: int, weight: int) -> bool:
        """Whether shedding the overflow at group s's ratio or worse can still win."""
        if s < 0:
            return False
        loss = -(-(weight - self.capacity) * self.values[s] // self.weights[s])
        return value - loss > self.best_value

    def _may_add(self, t: int, value: int, weight: int) -> bool:
        if t >= len(self.counts):
            return value > self.best_value
        gain = (self.capacity - weight) * self.values[t] // self.weights[t]
        return value + gain > self.best_value

    def _record(self, value: int) -> None:
        self.best_value = value
        self.best_taken = [
            g + a - r for g, a, r in zip(self.greedy, self.added, self.removed, strict=True)
        ]
        if self.root is not None and value >= self.root:
            raise _Proven

    def _count_node(self, depth: int) -> None:
        self.nodes += 1
        if depth > _MAX_DEPTH:
            raise _Stop
        if self.nodes % _CHECK_EVERY == 1 and (
            self.nodes >= self.node_limit or perf_counter() > self.deadline
        ):
            raise _Stop
