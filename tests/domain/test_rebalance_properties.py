"""The engine against independent answers: enumeration, a DP, and the HiGHS MILP.

Every check here recomputes the market value, the bands and PD with `Fraction`, apart from
the engine's code, and compares objective values (several quantity vectors can be optimal).
"""

import itertools
import random
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from order_generation.domain import milp
from order_generation.domain.errors import Infeasible
from order_generation.domain.knapsack import Ladder, Rung, fill
from order_generation.domain.models import Position
from order_generation.domain.rebalance import RebalanceProblem, RebalanceResult, solve

DRIFTS = [Decimal(d) for d in ("0", "0.005", "0.01", "0.02", "0.05", "0.1")]
ENUMERATION_LIMIT = 6_000


def security_id(i: int) -> str:
    return f"S{i:023d}"


class Terms:
    """The problem restated with Fractions, in the engine's security order."""

    def __init__(self, problem: RebalanceProblem) -> None:
        model = {p.security_id: p for p in problem.positions}
        extra = sorted(s for s in problem.holdings if s not in model)
        self.ids = [*model, *extra]
        self.mv = Fraction(problem.cash) + sum(
            q * Fraction(problem.prices[s]) for s, q in problem.holdings.items()
        )
        self.price = [Fraction(problem.prices[s]) for s in self.ids]
        self.weight = [Fraction(model[s].target) if s in model else Fraction(0) for s in self.ids]
        low = [Fraction(model[s].low_drift) if s in model else Fraction(0) for s in self.ids]
        high = [Fraction(model[s].high_drift) if s in model else Fraction(0) for s in self.ids]
        self.floor = [self.mv * (w - lo) for w, lo in zip(self.weight, low, strict=True)]
        self.ceiling = [self.mv * (w + h) for w, h in zip(self.weight, high, strict=True)]

    def band(self, i: int) -> range:
        lowest = max(0, ceil(self.floor[i] / self.price[i]))
        return range(lowest, floor(self.ceiling[i] / self.price[i]) + 1)

    def deviation(self, quantities: list[int]) -> Fraction:
        terms = zip(self.weight, quantities, self.price, strict=True)
        return sum((abs(self.mv * w - u * p) for w, u, p in terms), Fraction(0))

    def spent(self, quantities: list[int]) -> Fraction:
        return sum((u * p for u, p in zip(quantities, self.price, strict=True)), Fraction(0))


def assert_sound(problem: RebalanceProblem, result: RebalanceResult) -> Terms:
    """Every constraint and every reported figure, recomputed."""
    terms = Terms(problem)
    assert list(result.quantities) == terms.ids
    quantities = list(result.quantities.values())
    for i, u in enumerate(quantities):
        assert type(u) is int
        assert u >= 0
        assert terms.floor[i] <= u * terms.price[i] <= terms.ceiling[i]
    assert terms.spent(quantities) <= terms.mv
    assert Fraction(result.market_value) == terms.mv
    assert Fraction(result.cash_after) == terms.mv - terms.spent(quantities)
    assert Fraction(result.objective) == terms.deviation(quantities)
    moves = {t.security_id: (1 if t.side == "BUY" else -1) * t.quantity for t in result.trades}
    for s, u in result.quantities.items():
        assert moves.get(s, 0) == u - problem.holdings.get(s, 0)
    assert [d.security_id for d in result.drifts] == terms.ids
    return terms


def enumerate_optimum(problem: RebalanceProblem) -> Fraction | None:
    """min PD by trying every quantity vector inside the bands; None if none is feasible."""
    terms = Terms(problem)
    if terms.mv < 0:
        return None
    bands = [terms.band(i) for i in range(len(terms.ids))]
    best = None
    for quantities in itertools.product(*bands):
        if terms.spent(list(quantities)) <= terms.mv:
            value = terms.deviation(list(quantities))
            best = value if best is None else min(best, value)
    return best


def milp_optimum(problem: RebalanceProblem) -> Fraction:
    """PD of the HiGHS answer, re-evaluated exactly after checking it is feasible."""
    terms = Terms(problem)
    bands = [terms.band(i) for i in range(len(terms.ids))]
    answer = milp.minimise_deviation(
        [Decimal(problem.prices[s]) for s in terms.ids],
        [_decimal(terms.mv * w) for w in terms.weight],
        [b.start for b in bands],
        [b.stop - 1 for b in bands],
        _decimal(terms.mv),
        time_limit=20,
    )
    quantities = list(answer.quantities)
    assert all(q in b for q, b in zip(quantities, bands, strict=True))
    assert terms.spent(quantities) <= terms.mv
    return terms.deviation(quantities)


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


@st.composite
def tiny_problems(draw: st.DrawFn) -> RebalanceProblem:
    """1-4 model securities, perhaps one held outside the model, small share counts."""
    n = draw(st.integers(1, 4))
    steps = draw(st.lists(st.integers(1, 190 // n), min_size=n, max_size=n))
    positions = tuple(_position(i, k, draw) for i, k in enumerate(steps))
    ids = [security_id(i) for i in range(n + draw(st.integers(0, 1)))]
    prices = {s: Decimal(draw(st.integers(500, 50_000))) / 100 for s in ids}
    held = draw(st.lists(st.sampled_from(ids), unique=True))
    holdings = {s: draw(st.integers(-3, 12)) for s in held}
    cash = Decimal(draw(st.integers(0, 300_000))) / 100
    return RebalanceProblem(positions, holdings, cash, prices)


@st.composite
def binding_problems(draw: st.DrawFn) -> RebalanceProblem:
    """New portfolios, targets summing to 0.95, each just above half a share: rounding up
    overspends, and every band holds the rounded-up quantity."""
    n = draw(st.integers(2, 4))
    cash = Decimal(draw(st.integers(1_000, 20_000)))
    cuts = sorted(draw(st.lists(st.integers(1, 189), min_size=n - 1, max_size=n - 1, unique=True)))
    steps = [b - a for a, b in itertools.pairwise([0, *cuts, 190])]
    positions, prices = [], {}
    for i, k in enumerate(steps):
        target = Decimal(k) * Decimal("0.005")
        low = draw(st.sampled_from([target, target, (target * 6 / 10).quantize(Decimal("0.001"))]))
        positions.append(Position(security_id(i), target, low, target))
        shares = draw(st.integers(0, 2)) + Fraction(draw(st.integers(51, 95)), 100)
        prices[security_id(i)] = _cents(Fraction(cash) * Fraction(target) / shares)
    return RebalanceProblem(tuple(positions), {}, cash, prices)


def _cents(amount: Fraction) -> Decimal:
    return max(Decimal("0.01"), Decimal(round(amount * 100)) / 100)


def _position(i: int, steps: int, draw: st.DrawFn) -> Position:
    """A target of `steps` x 0.005 with two drifts drawn from DRIFTS."""
    low, high = sorted(draw(st.lists(st.sampled_from(DRIFTS), min_size=2, max_size=2)))
    return Position(security_id(i), Decimal(steps) * Decimal("0.005"), low, high)


def _check_against_enumeration(problem: RebalanceProblem) -> None:
    terms = Terms(problem)
    sizes = [len(terms.band(i)) for i in range(len(terms.ids))] if terms.mv >= 0 else [0]
    assume(_product(sizes) <= ENUMERATION_LIMIT)
    best = enumerate_optimum(problem)
    try:
        result = solve(problem)
    except Infeasible:
        event("infeasible")
        assert best is None
        return
    event(result.method)
    assert best is not None
    assert_sound(problem, result)
    assert Fraction(result.objective) == best


def _product(sizes: list[int]) -> int:
    total = 1
    for size in sizes:
        total *= size
    return total


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_problems())
def test_matches_enumeration_on_tiny_problems(problem: RebalanceProblem) -> None:
    _check_against_enumeration(problem)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(binding_problems())
def test_matches_enumeration_when_cash_binds(problem: RebalanceProblem) -> None:
    _check_against_enumeration(problem)


def random_problem(seed: int, n: int, binding: bool) -> RebalanceProblem:
    """Seeded realistic problems; `binding` is built like `binding_problems`, at size n."""
    rng = random.Random(seed)
    if binding:
        return _binding_problem(rng, n)
    steps = [rng.randint(1, max(1, 190 // n)) for _ in range(n)]
    positions = tuple(
        Position(security_id(i), Decimal(k) * Decimal("0.005"), *sorted(rng.sample(DRIFTS, 2)))
        for i, k in enumerate(steps)
    )
    ids = [p.security_id for p in positions] + [security_id(n + i) for i in range(3)]
    prices = {s: Decimal(rng.randint(300, 500_000)) / 100 for s in ids}
    holdings = {s: rng.randint(0, 400) for s in ids if rng.random() < 0.6}
    return RebalanceProblem(positions, holdings, Decimal(rng.randint(1_000, 500_000)), prices)


def _binding_problem(rng: random.Random, n: int) -> RebalanceProblem:
    n = min(n, 190)
    steps = [
        b - a for a, b in itertools.pairwise([0, *sorted(rng.sample(range(1, 190), n - 1)), 190])
    ]
    cash = Decimal(rng.randint(10_000, 5_000_000))
    positions, prices = [], {}
    for i, k in enumerate(steps):
        target = Decimal(k) * Decimal("0.005")
        low = rng.choice([target, target, (target * 6 / 10).quantize(Decimal("0.001"))])
        positions.append(Position(security_id(i), target, low, target))
        shares = rng.randint(0, 4) + Fraction(rng.randint(51, 97), 100)
        prices[security_id(i)] = _cents(Fraction(cash) * Fraction(target) / shares)
    return RebalanceProblem(tuple(positions), {}, cash, prices)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 100), st.booleans())
def test_matches_the_milp_on_problems_up_to_100_securities(
    seed: int, n: int, binding: bool
) -> None:
    problem = random_problem(seed, n, binding)
    try:
        result = solve(problem)
    except Infeasible:
        event("infeasible")
        terms = Terms(problem)
        assert (
            any(not terms.band(i) for i in range(len(terms.ids)))
            or sum(terms.band(i).start * p for i, p in enumerate(terms.price)) > terms.mv
        )
        return
    event(result.method)
    assert_sound(problem, result)
    reference = milp_optimum(problem)
    assert Fraction(result.objective) <= reference
    assert reference - Fraction(result.objective) <= max(Fraction(1), reference) / 10**6


@st.composite
def knapsacks(draw: st.DrawFn) -> tuple[tuple[Ladder, ...], int]:
    """Ladders of rungs of any weights whose value per unit of weight never rises."""
    ladders = []
    for _ in range(draw(st.integers(1, 6))):
        rungs: list[Rung] = []
        ratio = Fraction(draw(st.integers(1, 3)))
        for _ in range(draw(st.integers(0, 3))):
            weight = draw(st.integers(1, 30))
            value = floor(weight * ratio * Fraction(draw(st.integers(1, 4)), 4))
            ratio = Fraction(value, weight)
            rungs.append(Rung(weight, draw(st.integers(0, 3)), value))
        ladders.append(tuple(rungs))
    total = sum(r.weight * r.count for ladder in ladders for r in ladder)
    return tuple(ladders), draw(st.integers(0, total))


def climbs(ladder: Ladder) -> list[tuple[int, int]]:
    """(weight, value) of every climb of the ladder, a rung only after the one below."""
    found, weight, value = [(0, 0)], 0, 0
    for rung in ladder:
        for _ in range(rung.count):
            weight, value = weight + rung.weight, value + rung.value
            found.append((weight, value))
    return found


def knapsack_optimum(ladders: tuple[Ladder, ...], capacity: int) -> int:
    """Dynamic programme over capacity, one ladder at a time."""
    best = [0] * (capacity + 1)
    for ladder in ladders:
        options = climbs(ladder)
        best = [max(best[c - w] + v for w, v in options if w <= c) for c in range(capacity + 1)]
    return best[capacity]


@settings(max_examples=400, deadline=None)
@given(knapsacks())
def test_the_search_matches_a_dynamic_programme(knapsack: tuple[tuple[Ladder, ...], int]) -> None:
    ladders, capacity = knapsack
    found = fill(ladders, capacity, deadline=float("inf"), node_limit=10**9)
    assert found.proven
    assert found.value == knapsack_optimum(ladders, capacity)
    weight = value = 0
    for steps, ladder in zip(found.steps, ladders, strict=True):
        complete = True
        for taken, rung in zip(steps, ladder, strict=True):
            assert 0 <= taken <= rung.count
            assert complete or taken == 0, "a rung was climbed before the one below it"
            complete = taken == rung.count
            weight, value = weight + taken * rung.weight, value + taken * rung.value
    assert weight <= capacity
    assert value == found.value
