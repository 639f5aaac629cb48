"""One security's part of the rebalance in whole units: the quantities it may take and their cost.

Every amount of a portfolio is read, exactly, as a whole number of 10^e dollars
(`Book.exponent`), so the search works on integers. For security i with price P, held
quantity h, goal G = V·w, band [F, U] and, under best-effort bands, a penalty M per unit
outside the band, the term of the objective is

    f(u) = M·outside(u·P) + |G - u·P|,   outside(x) = max(0, F - x, x - U),

convex in u with its minimum at the goal. The policy allows a set of quantities, written as
at most four `Run`s of evenly spaced quantities: closing the position (u = 0), the sales
(h - m, h - m - L, ... down to the band or 0), holding (u = h) and the purchases (h + m,
h + m + L, ... up to the band or what the cash allows), where L is the lot and m the smallest
multiple of L that meets the minimum trade; restrictions cut the sales or the purchases off.
Without sizing rules the runs are one: every quantity of the band.

Because f is convex, the allowed quantity nearest the goal is one of the two around it in some
run (`nearest`), and below that quantity f falls all the way up to it: climbing from the
lowest allowed quantity toward it, each step gains f(before) - f(after) for its cost, at a
rate that never rises (`ladder`). That is the knapsack `knapsack.fill` solves when the
nearest quantities overspend the cash.
"""

from collections.abc import Iterator, Mapping, Sequence
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
from itertools import pairwise
from typing import NamedTuple

from order_generation.domain.errors import InvalidInput
from order_generation.domain.knapsack import Ladder, Rung
from order_generation.domain.models import Position
from order_generation.domain.policy import Policy

EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow, FloatOperation],
)
"""Unlimited precision; any operation that would round, or compare a float, raises instead."""
ZERO = Decimal(0)


class Run(NamedTuple):
    """The quantities first, first + step, ..., last."""

    first: int
    last: int
    step: int

    def holds(self, u: int) -> bool:
        return self.first <= u <= self.last and (u - self.first) % self.step == 0

    def around(self, goal: int, price: int) -> Iterator[int]:
        """The one or two quantities of the run nearest goal/price from below and above."""
        k = (goal - self.first * price) // (self.step * price)
        top = (self.last - self.first) // self.step
        below, above = min(max(k, 0), top), min(max(k + 1, 0), top)
        yield self.first + below * self.step
        if above != below:
            yield self.first + above * self.step


class Term(NamedTuple):
    """Security i in units: price, held quantity, target weight, goal, band, penalty outside
    it, and the policy's sizing (lot, least trade in shares) and restrictions."""

    price: int
    held: int
    weight: int
    goal: int
    floor: int
    ceiling: int
    penalty: int
    lot: int
    least: int
    may_buy: bool
    may_sell: bool
    fixed: bool

    def cost(self, u: int) -> int:
        """f(u): the penalty times the amount outside the band, plus the distance to goal."""
        amount = u * self.price
        if not self.penalty:
            return abs(self.goal - amount)
        return self.penalty * self.outside(amount) + abs(self.goal - amount)

    def outside(self, amount: int) -> int:
        return max(0, self.floor - amount, amount - self.ceiling)

    def runs(self, budget: int, strict: bool) -> list[Run]:
        """The quantities the policy allows, as runs in increasing order (empty if none)."""
        if self.fixed:
            inside = self.floor <= self.held * self.price <= self.ceiling
            return (
                [Run(self.held, self.held, 1)] if self.held >= 0 and (inside or not strict) else []
            )
        lowest, highest = 0, budget // self.price
        if strict:
            lowest = max(lowest, -(-self.floor // self.price))
            highest = min(highest, self.ceiling // self.price)
        if not self.may_buy:
            highest = min(highest, self.held)
        if not self.may_sell:
            lowest = max(lowest, self.held)
        if lowest > highest:
            return []
        if self.lot == 1 and self.least <= 1:
            return [Run(lowest, highest, 1)]
        return self._sized(lowest, highest)

    def _sized(self, lowest: int, highest: int) -> list[Run]:
        """Hold, sell at least `step`, buy at least `step` (in lots), or close to 0."""
        h, lot = self.held, self.lot
        step = max(lot, -(-self.least // lot) * lot)
        runs = [
            run
            for run in (
                _lattice(lowest, min(highest, h - step), h, lot),
                _lattice(h, h, h, 1) if lowest <= h <= highest else None,
                _lattice(max(lowest, h + step), highest, h, lot),
            )
            if run is not None
        ]
        if lowest == 0 and not any(run.holds(0) for run in runs):
            runs.insert(0, Run(0, 0, 1))
        return runs

    def nearest(self, runs: list[Run]) -> int:
        """The allowed quantity with the lowest cost; of two equal, the lower."""
        if len(runs) == 1 and runs[0].step == 1 and not self.penalty:
            # The whole quantity nearest goal/price (of two equally near, the lower), clipped.
            nearest = (2 * self.goal + self.price - 1) // (2 * self.price)
            return min(max(nearest, runs[0].first), runs[0].last)
        best, lowest = -1, 0
        for run in runs:
            for u in run.around(self.goal, self.price):
                cost = self.cost(u)
                if best < 0 or cost < lowest:
                    best, lowest = u, cost
        return best

    def ladder(self, runs: list[Run], top: int) -> Ladder:
        """The steps from the lowest allowed quantity up to `top`, as rungs of equal steps."""
        rungs: list[Rung] = []
        previous: int | None = None
        for run in runs:
            if run.first > top:
                break
            last = min(run.last, run.first + (top - run.first) // run.step * run.step)
            if previous is not None:
                rungs.append(self._rung(previous, run.first, 1))
            rungs += self._climb(Run(run.first, last, run.step))
            previous = last
        return tuple(rungs)

    def _climb(self, run: Run) -> list[Rung]:
        """The steps through one run, grouped where f is linear: f bends only where the
        amount passes the goal, or the floor when there is a penalty, so cut the steps there."""
        steps = (run.last - run.first) // run.step
        cuts = {0, steps}
        for bend in (self.floor, self.goal) if self.penalty else (self.goal,):
            k = -(-(bend - run.first * self.price) // (run.step * self.price))
            cuts |= {min(max(j, 0), steps) for j in (k - 1, k)}
        edges = sorted(cuts)
        rungs = []
        for start, end in pairwise(edges):
            u = run.first + start * run.step
            rungs.append(self._rung(u, u + run.step, end - start))
        return rungs

    def _rung(self, lower: int, upper: int, count: int) -> Rung:
        return Rung((upper - lower) * self.price, count, self.cost(lower) - self.cost(upper))


def _lattice(start: int, end: int, anchor: int, lot: int) -> Run | None:
    """The quantities anchor + k·lot within [start, end], or None."""
    first = start + (anchor - start) % lot
    if first > end:
        return None
    return Run(first, first + (end - first) // lot * lot, lot)


@dataclass(frozen=True, slots=True)
class Book:
    """One portfolio read into `Term`s, in the order the result lists them: model positions in
    model order, then held securities the model lacks, by id (as positions of target 0).

    Amounts are whole numbers of 10^`exponent` dollars. `value` is V = MV - withdraw (targets,
    bands and actual weights are reckoned on it) and `budget` what the securities may cost
    after the trades: V less the cash reserve.
    """

    ids: list[str]
    positions: list[Position]
    prices: list[Decimal]
    terms: list[Term]
    value: int
    budget: int
    exponent: int
    weight_exponent: int
    market_value: Decimal
    reserve: Decimal


def read(
    positions: Sequence[Position],
    holdings: Mapping[str, int],
    cash: Decimal,
    prices: Mapping[str, Decimal],
    policy: Policy,
    *,
    keep_in_band: bool,
) -> Book:
    """The book of one portfolio under `policy`; with `keep_in_band`, a model security whose
    holding lies in its band keeps it (the `bands` mode)."""
    model = {p.security_id: p for p in positions}
    ids = [*model, *sorted(set(holdings).difference(model))]
    rows = [model.get(sid) or Position(sid, ZERO, ZERO, ZERO) for sid in ids]
    price_list = [prices[sid] for sid in ids]
    weight, weights, lows, highs = _weights(tuple(positions), policy.min_cash_fraction)
    extra = [0] * (len(ids) - len(weights))
    weights, lows, highs = weights + extra, lows + extra, highs + extra
    with localcontext(EXACT):
        market_value = cash + sum([q * prices[sid] for sid, q in holdings.items()], ZERO)
        value = market_value - policy.withdraw
        reserve = policy.reserve(value)
        money = _money_exponent(cash, price_list, policy)
        amount_unit = Decimal(10 ** -(money + weight))
        v = int(value.scaleb(-money))
        budget = int((value - reserve) * amount_unit)
        least_value = int(policy.min_trade_value * amount_unit)
        shares = _whole(amount_unit, price_list)
    terms = []
    for sid, p, w, low, high in zip(ids, shares, weights, lows, highs, strict=True):
        held = holdings.get(sid, 0)
        floor, ceiling = v * (w - low) if w > low else 0, v * (w + high)
        least = max(policy.min_trade_quantity, -(-least_value // p))
        fixed = sid in policy.hold or (keep_in_band and w > 0 and floor <= held * p <= ceiling)
        lot = policy.round_lots.get(sid, policy.round_lot)
        terms.append(
            Term(
                p,
                held,
                w,
                v * w,
                floor,
                ceiling,
                0,
                lot,
                least,
                policy.may_buy(sid),
                policy.may_sell(sid),
                fixed,
            )
        )
    if policy.bands == "best_effort":
        penalty = sum(t.goal for t in terms) + max(budget, 0) + 1
        terms = [t._replace(penalty=penalty) for t in terms]
    return Book(
        ids,
        rows,
        price_list,
        terms,
        v * 10**-weight,
        budget,
        money + weight,
        weight,
        market_value,
        reserve,
    )


def _whole(unit: Decimal, values: list[Decimal]) -> list[int]:
    """Each value times `unit`, which must be a whole number."""
    return list(map(int, map(unit.__mul__, values)))


def _money_exponent(cash: Decimal, prices: list[Decimal], policy: Policy) -> int:
    """Every amount is a whole number of 10^this dollars (a sum has its terms' least exponent)."""
    money = (cash, sum(prices, ZERO), policy.withdraw, policy.min_cash, policy.min_trade_value)
    return min(0, *map(_exponent, money))


_WEIGHTS: dict[int, tuple[tuple[Position, ...], int, list[int], list[int], list[int]]] = {}
"""id(positions) -> (positions, exponent, targets, low drifts, high drifts); the positions are
kept, so an id is not reused while its entry lives. Every portfolio of a model rebalance
shares its model's positions, so they are read once, not once per portfolio."""
_WEIGHTS_KEPT = 64


def _weights(
    positions: tuple[Position, ...], fraction: Decimal
) -> tuple[int, list[int], list[int], list[int]]:
    """The exponent of the weights (every target, drift and `fraction` is a whole number of
    10^exponent), and the targets, low and high drifts in that unit."""
    entry = _WEIGHTS.get(id(positions))
    if entry is None or entry[0] is not positions:
        entry = (positions, *_read_weights(positions))
        if len(_WEIGHTS) >= _WEIGHTS_KEPT:
            _WEIGHTS.clear()  # atomic, unlike evicting one entry, for solves on threads
        _WEIGHTS[id(positions)] = entry
    _, exponent, targets, lows, highs = entry
    fine = min(exponent, _exponent(fraction))
    if fine == exponent:
        return exponent, targets, lows, highs
    up = 10 ** (exponent - fine)
    return fine, [w * up for w in targets], [w * up for w in lows], [w * up for w in highs]


def _read_weights(positions: tuple[Position, ...]) -> tuple[int, list[int], list[int], list[int]]:
    with localcontext(EXACT):
        columns = [
            [p.target for p in positions],
            [p.low_drift for p in positions],
            [p.high_drift for p in positions],
        ]
        exponent = min(0, *(_exponent(sum(column, ZERO)) for column in columns))
        unit = Decimal(10**-exponent)
        targets, lows, highs = (_whole(unit, column) for column in columns)
    return exponent, targets, lows, highs


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent if isinstance(value, Decimal) else None
    if not isinstance(exponent, int):
        raise InvalidInput("decimal", "must be a finite decimal")
    return exponent
