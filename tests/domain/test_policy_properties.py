"""Rebalance policies: the engine against brute force and against the HiGHS MILP.

`Rules` restates the problem with its policy in `Fraction`s straight from the rules of
`domain/policy.py`, apart from the engine's code and from the MILP's: it is the one checker
of every answer here (the engine's, the MILP's and the brute force's). The objective is the
pair (total amount outside the bands, PD), compared lexicographically; under strict bands the
first part is 0. Several quantity vectors can be optimal, so objectives are compared, never
quantities.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import floor, lcm

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from order_generation.domain.errors import Infeasible
from order_generation.domain.milp import PolicyMilpSolution, solve_policy_milp
from order_generation.domain.models import Position
from order_generation.domain.policy import BANDS, MODES, Policy
from order_generation.domain.rebalance import RebalanceProblem, RebalanceResult, solve

DRIFTS = [Decimal(d) for d in ("0", "0.01", "0.02", "0.05", "0.1", "0.25")]
ENUMERATION_LIMIT = 20_000
FOREIGN = "F" * 24
"""A security no problem holds or models: a policy names it for other portfolios."""
Objective = tuple[Fraction, Fraction]


def security_id(i: int) -> str:
    return f"P{i:023d}"


class Rules:
    """The problem and its policy with Fractions, in the order model, then held by id."""

    def __init__(self, problem: RebalanceProblem) -> None:
        policy = self.policy = problem.policy
        model = {p.security_id: p for p in problem.positions}
        self.ids = [*model, *sorted(s for s in problem.holdings if s not in model)]
        self.held = [problem.holdings.get(s, 0) for s in self.ids]
        self.price = [Fraction(problem.prices[s]) for s in self.ids]
        self.cash = Fraction(problem.cash)
        self.mv = self.cash + sum(
            (h * p for h, p in zip(self.held, self.price, strict=True)), Fraction(0)
        )
        self.withdraw = Fraction(policy.withdraw)
        self.value = value = self.mv - self.withdraw
        self.reserve = max(Fraction(policy.min_cash), Fraction(policy.min_cash_fraction) * value)
        zero = Fraction(0)
        self.weight = [Fraction(model[s].target) if s in model else zero for s in self.ids]
        low = [Fraction(model[s].low_drift) if s in model else zero for s in self.ids]
        high = [Fraction(model[s].high_drift) if s in model else zero for s in self.ids]
        self.goal = [value * w for w in self.weight]
        self.floor = [value * max(w - lo, zero) for w, lo in zip(self.weight, low, strict=True)]
        self.ceiling = [value * (w + h) for w, h in zip(self.weight, high, strict=True)]
        self.in_band = [
            w > 0 and f <= h * p <= c
            for w, f, c, h, p in zip(
                self.weight, self.floor, self.ceiling, self.held, self.price, strict=True
            )
        ]
        self.best_effort = policy.bands == "best_effort"

    @property
    def budget(self) -> Fraction:
        """What the quantities may be worth: cash after >= withdraw + reserve."""
        return self.value - self.reserve

    def refusal(self, i: int, u: int, *, keep_in_band: bool) -> str | None:
        """Why security i may not take quantity u, by the rules that concern it alone."""
        s, h, p, policy = self.ids[i], self.held[i], self.price[i], self.policy
        if u < 0:
            return "below 0"
        if policy.mode == "buy_only" and u < h:
            return "a sale under buy_only"
        if policy.mode == "sell_only" and u > h:
            return "a purchase under sell_only"
        if s in policy.no_buy and u > h:
            return "a purchase of a no_buy security"
        if s in policy.no_sell and u < h:
            return "a sale of a no_sell security"
        if s in policy.hold and u != h:
            return "a trade of a held-fixed security"
        if keep_in_band and self.in_band[i] and u != h:
            return "a trade of a security in its band under mode bands"
        if u not in (h, 0):
            size = abs(u - h)
            if size % policy.round_lots.get(s, policy.round_lot):
                return "not a whole number of lots"
            if size < policy.min_trade_quantity:
                return "below the minimum trade quantity"
            if size * p < Fraction(policy.min_trade_value):
                return "below the minimum trade value"
        if not self.best_effort and not self.floor[i] <= u * p <= self.ceiling[i]:
            return "outside its band"
        return None

    def violations(self, quantities: Sequence[int], *, keep_in_band: bool) -> list[str]:
        """Every rule `quantities` breaks; [] for an answer."""
        problems = []
        if self.withdraw > self.mv:
            problems.append("the withdrawal exceeds the market value")
        for i, u in enumerate(quantities):
            if type(u) is not int:
                problems.append(f"{self.ids[i]}: {u!r} is not a whole number")
            elif (why := self.refusal(i, u, keep_in_band=keep_in_band)) is not None:
                problems.append(f"{self.ids[i]}: {u} is {why}")
        if self.spent(quantities) > self.budget:
            problems.append("the cash after the trades is below withdraw + reserve")
        return problems

    def spent(self, quantities: Sequence[int]) -> Fraction:
        return sum((u * p for u, p in zip(quantities, self.price, strict=True)), Fraction(0))

    def outside(self, i: int, u: int) -> Fraction:
        amount = u * self.price[i]
        return max(Fraction(0), self.floor[i] - amount, amount - self.ceiling[i])

    def deviation(self, i: int, u: int) -> Fraction:
        return abs(self.goal[i] - u * self.price[i])

    def objective(self, quantities: Sequence[int]) -> Objective:
        outside = sum((self.outside(i, u) for i, u in enumerate(quantities)), Fraction(0))
        deviation = sum((self.deviation(i, u) for i, u in enumerate(quantities)), Fraction(0))
        return (outside if self.best_effort else Fraction(0)), deviation

    def most(self, i: int) -> int:
        """No answer holds more of security i: every quantity is >= 0 and the prices > 0."""
        return max(floor(self.budget / self.price[i]), -1)


@dataclass(frozen=True)
class Optimum:
    mode: str
    objective: Objective


def brute_force(rules: Rules) -> Optimum | None:
    """The optimum over every integer vector with 0 <= u_i <= `most(i)`; None if none is
    feasible. Mode bands first keeps the in-band securities, then falls back to full."""
    attempts = [("bands", True), ("full", False)] if rules.policy.mode == "bands" else []
    for mode, keep in attempts or [(rules.policy.mode, False)]:
        best = _enumerate(rules, keep_in_band=keep)
        if best is not None:
            return Optimum(mode, best)
    return None


def _candidates(rules: Rules, *, keep_in_band: bool) -> list[list[int]]:
    """Per security, the quantities its own rules allow (the cash row couples them)."""
    return [
        [
            u
            for u in range(rules.most(i) + 1)
            if rules.refusal(i, u, keep_in_band=keep_in_band) is None
        ]
        for i in range(len(rules.ids))
    ]


def _enumerate(rules: Rules, *, keep_in_band: bool) -> Objective | None:
    if rules.withdraw > rules.mv or rules.budget < 0:
        return None
    candidates = _candidates(rules, keep_in_band=keep_in_band)
    # Whole numbers throughout: cents for amounts, a common denominator for the objective.
    cents = [[round(u * p * 100) for u in c] for c, p in zip(candidates, rules.price, strict=True)]
    budget = floor(rules.budget * 100)
    terms = [
        [
            (rules.outside(i, u) if rules.best_effort else Fraction(0), rules.deviation(i, u))
            for u in c
        ]
        for i, c in enumerate(candidates)
    ]
    scale = lcm(1, *(x.denominator for row in terms for pair in row for x in pair))
    whole = [[(int(o * scale), int(d * scale)) for o, d in row] for row in terms]
    best: tuple[int, int] | None = None
    best_vector: tuple[int, ...] | None = None
    for choice in itertools.product(*(range(len(c)) for c in candidates)):
        if sum(cents[i][k] for i, k in enumerate(choice)) > budget:
            continue
        value = (
            sum(whole[i][k][0] for i, k in enumerate(choice)),
            sum(whole[i][k][1] for i, k in enumerate(choice)),
        )
        if best is None or value < best:
            best, best_vector = value, tuple(candidates[i][k] for i, k in enumerate(choice))
    if best is None or best_vector is None:
        return None
    assert rules.violations(best_vector, keep_in_band=keep_in_band) == []
    assert rules.objective(best_vector) == (Fraction(best[0], scale), Fraction(best[1], scale))
    return rules.objective(best_vector)


def enumeration_size(rules: Rules) -> int:
    if rules.withdraw > rules.mv or rules.budget < 0:
        return 0
    sizes = []
    for keep in (True, False):
        size = 1
        for c in _candidates(rules, keep_in_band=keep):
            size *= len(c)
        sizes.append(size)
    return sum(sizes)


def check_result(problem: RebalanceProblem, result: RebalanceResult) -> Objective:
    """Every rule and every reported figure of the engine's answer, recomputed; its objective."""
    rules = Rules(problem)
    policy = problem.policy
    assert result.policy == policy
    assert result.mode == policy.mode or (policy.mode == "bands" and result.mode == "full")
    assert set(result.quantities) == set(rules.ids)
    quantities = [result.quantities[s] for s in rules.ids]
    assert rules.violations(quantities, keep_in_band=result.mode == "bands") == []
    outside, deviation = rules.objective(quantities)
    assert Fraction(result.objective) == deviation
    breaches = {b.security_id: b for b in result.breaches}
    assert len(breaches) == len(result.breaches)
    expected = {s: i for i, s in enumerate(rules.ids) if rules.outside(i, quantities[i]) > 0}
    assert set(breaches) == (set(expected) if rules.best_effort else set())
    for s, i in expected.items() if rules.best_effort else ():
        breach, u = breaches[s], quantities[i]
        assert Fraction(breach.outside) == rules.outside(i, u)
        assert Fraction(breach.amount) == u * rules.price[i]
        assert (Fraction(breach.floor), Fraction(breach.ceiling)) == (
            rules.floor[i],
            rules.ceiling[i],
        )
    assert sum((Fraction(b.outside) for b in result.breaches), Fraction(0)) == outside
    moves = {t.security_id: (1 if t.side == "BUY" else -1) * t.quantity for t in result.trades}
    assert all(t.quantity > 0 for t in result.trades)
    for s, u, h in zip(rules.ids, quantities, rules.held, strict=True):
        assert moves.get(s, 0) == u - h
    assert Fraction(result.market_value) == rules.mv
    spent = sum(
        ((u - h) * p for u, h, p in zip(quantities, rules.held, rules.price, strict=True)),
        Fraction(0),
    )
    assert Fraction(result.cash_after) == rules.cash - spent
    return outside, deviation


def check_milp(problem: RebalanceProblem, reference: PolicyMilpSolution) -> Objective | None:
    """The MILP's verdict, its answer checked by the rules; its objective (None: infeasible)."""
    assert reference.status in ("optimal", "infeasible"), reference
    if reference.status == "infeasible":
        return None
    rules = Rules(problem)
    assert reference.quantities is not None
    quantities = [reference.quantities[s] for s in rules.ids]
    assert rules.violations(quantities, keep_in_band=reference.mode == "bands") == []
    objective = rules.objective(quantities)
    assert (reference.outside if rules.best_effort else Fraction(0), reference.deviation) == (
        objective
    )
    return objective


def engine(problem: RebalanceProblem) -> RebalanceResult | None:
    """The engine's answer, or None when it finds the problem infeasible."""
    try:
        result = solve(problem, time_limit=10)
    except Infeasible:
        event("engine: infeasible")
        return None
    event(f"engine: mode {result.mode}, {'some' if result.breaches else 'no'} breaches")
    event(f"engine: {result.method}, {result.status}")
    return result


# --- problems and policies ----------------------------------------------------------------


def _cents(draw: st.DrawFn, least: Fraction, most: Fraction) -> Decimal:
    low, high = max(0, floor(least * 100)), max(0, floor(most * 100))
    return Decimal(draw(st.integers(low, max(low, high)))) / 100


def _sometimes(draw: st.DrawFn) -> bool:
    """Whether to set a field away from its default: a third of the time, so that a policy
    mostly combines a few rules and its problem is mostly feasible."""
    return draw(st.integers(0, 2)) == 0


def _amount(draw: st.DrawFn, most: Fraction) -> Decimal:
    return _cents(draw, Fraction(0), most) if _sometimes(draw) else Decimal(0)


def _ids(draw: st.DrawFn, ids: list[str]) -> frozenset[str]:
    if not _sometimes(draw):
        return frozenset()
    return frozenset(draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True)))


@st.composite
def policies(draw: st.DrawFn, ids: list[str], mv: Fraction) -> Policy:
    """Every field, each away from its default a third of the time (the mode and the band
    handling are drawn evenly), in any combination."""
    scale = max(mv, Fraction(1))
    withdraw = _amount(draw, scale * Fraction(6, 10))
    if draw(st.integers(0, 9)) == 0:
        withdraw = _cents(draw, scale, scale * Fraction(11, 10))  # at or past the whole value
    fraction = st.sampled_from([Decimal(f) for f in ("0.01", "0.05", "0.1", "0.25")])
    lots = st.sampled_from([1, 2, 3, 5, 10])
    return Policy(
        mode=draw(st.sampled_from(MODES)),
        min_cash=_amount(draw, scale * Fraction(3, 10)),
        min_cash_fraction=draw(fraction) if _sometimes(draw) else Decimal(0),
        withdraw=withdraw,
        no_buy=_ids(draw, ids),
        no_sell=_ids(draw, ids),
        hold=_ids(draw, ids),
        min_trade_value=_amount(draw, scale * Fraction(2, 10)),
        min_trade_quantity=draw(st.integers(1, 4)) if _sometimes(draw) else 0,
        round_lot=draw(st.sampled_from([2, 3, 5])) if _sometimes(draw) else 1,
        round_lots=(
            draw(st.dictionaries(st.sampled_from([*ids, FOREIGN]), lots, min_size=1, max_size=2))
            if _sometimes(draw)
            else {}
        ),
        bands=draw(st.sampled_from(BANDS)),
    )


def _positions(draw: st.DrawFn, n: int) -> tuple[Position, ...]:
    """n positions, targets multiples of 0.005 summing to at most 0.95 (half the time exactly,
    so that cash binds often), drifts from DRIFTS."""
    if draw(st.booleans()):
        cuts = draw(st.lists(st.integers(1, 189), min_size=n - 1, max_size=n - 1, unique=True))
        steps = [b - a for a, b in itertools.pairwise([0, *sorted(cuts), 190])]
    else:
        steps = draw(st.lists(st.integers(1, 190 // n), min_size=n, max_size=n))
    positions = []
    for i, k in enumerate(steps):
        low, high = sorted(draw(st.lists(st.sampled_from(DRIFTS), min_size=2, max_size=2)))
        positions.append(Position(security_id(i), Decimal(k) * Decimal("0.005"), low, high))
    return tuple(positions)


@st.composite
def tiny_problems(draw: st.DrawFn) -> RebalanceProblem:
    """2-4 securities (1-3 in the model, perhaps one held outside it), each priced so that the
    portfolio buys at most about ten of it."""
    n = draw(st.integers(1, 3))
    ids = [security_id(i) for i in range(n + draw(st.integers(0, 1)))]
    assume(len(ids) >= 2)
    total = Fraction(draw(st.integers(100, 3_000)))
    prices, holdings = {}, {}
    for s in ids:
        shares = Fraction(draw(st.integers(10, 100)), 10)
        prices[s] = max(Decimal("0.01"), Decimal(round(total / shares * 100)) / 100)
        if draw(st.booleans()):
            holdings[s] = draw(st.integers(-1, 4))
    held = sum((q * Fraction(prices[s]) for s, q in holdings.items()), Fraction(0))
    cash = _cents(draw, total - held - total / 10, total - held + total / 5)
    problem = RebalanceProblem(_positions(draw, n), holdings, cash, prices)
    policy = draw(policies(ids, Rules(problem).mv))
    return RebalanceProblem(problem.positions, holdings, cash, prices, policy=policy)


@st.composite
def small_problems(draw: st.DrawFn) -> RebalanceProblem:
    """2-8 securities with realistic prices, holdings (some 0, some short, some outside the
    model) and cash."""
    n = draw(st.integers(1, 7))
    ids = [security_id(i) for i in range(n + draw(st.integers(0, 2)))]
    assume(len(ids) >= 2)
    prices = {s: Decimal(draw(st.integers(100, 50_000))) / 100 for s in ids}
    holdings = {}
    for s in draw(st.lists(st.sampled_from(ids), unique=True)):
        holdings[s] = draw(st.one_of(st.integers(0, 400), st.integers(-20, 0)))
    cash = Decimal(draw(st.integers(0, 20_000_000))) / 100
    problem = RebalanceProblem(_positions(draw, n), holdings, cash, prices)
    policy = draw(policies(ids, Rules(problem).mv))
    return RebalanceProblem(problem.positions, holdings, cash, prices, policy=policy)


def _tiny(problem: RebalanceProblem) -> Rules:
    rules = Rules(problem)
    assume(enumeration_size(rules) <= ENUMERATION_LIMIT)
    return rules


TINY = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
SMALL = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


@TINY
@given(tiny_problems())
def test_the_engine_matches_brute_force_on_tiny_problems(problem: RebalanceProblem) -> None:
    optimum = brute_force(_tiny(problem))
    result = engine(problem)
    if optimum is None or result is None:
        assert optimum is None, f"the engine found no answer; brute force found {optimum}"
        assert result is None, "the engine answered a problem with no feasible answer"
        return
    assert check_result(problem, result) == optimum.objective
    assert result.mode == optimum.mode


@TINY
@given(tiny_problems())
def test_the_milp_matches_brute_force_on_tiny_problems(problem: RebalanceProblem) -> None:
    """The reference itself, checked: same verdict, same mode, the same optimum up to
    HiGHS's float tolerances (its answer, recomputed exactly, is never better)."""
    rules = _tiny(problem)
    optimum = brute_force(rules)
    reference = solve_policy_milp(problem, time_limit=20)
    found = check_milp(problem, reference)
    event(f"milp: {reference.status}, mode {reference.mode} for {problem.policy.mode}")
    if optimum is None or found is None:
        assert optimum is None, reference
        assert found is None, optimum
        return
    assert reference.mode == optimum.mode
    event(f"{problem.policy.bands}, outside {'> 0' if optimum.objective[0] else '0'}")
    assert found >= optimum.objective
    tolerance = max(Fraction(1), rules.value) / 10**6
    assert found[0] - optimum.objective[0] <= tolerance
    assert found[1] - optimum.objective[1] <= tolerance


@SMALL
@given(small_problems())
def test_the_engine_is_never_worse_than_the_milp(problem: RebalanceProblem) -> None:
    reference = solve_policy_milp(problem, time_limit=20)
    found = check_milp(problem, reference)
    result = engine(problem)
    if found is None or result is None:
        assert found is None, "the engine found no answer; the MILP found one"
        assert result is None, "the engine answered a problem the MILP finds infeasible"
        return
    objective = check_result(problem, result)
    assert result.mode == reference.mode
    assert objective <= found, f"the MILP's answer is better: {found} < {objective}"
