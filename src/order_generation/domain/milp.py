"""The rebalance as a general MILP, solved by HiGHS: the reference and the fallback.

Two formulations share one runner:

- `minimise_deviation`, the plain problem over integer boxes (the engine's fallback):

      minimise    Σ_i d_i
      subject to  d_i ≥ T_i - P_i·u_i,   d_i ≥ P_i·u_i - T_i,   Σ_i P_i·u_i ≤ B,
                  lo_i ≤ u_i ≤ hi_i,  u_i integer,  d_i ≥ 0.

- `solve_policy_milp`, the whole problem with a rebalance policy (`domain/policy.py`), stated
  from the rules and not from how the engine solves it. With V = MV - withdraw, goal
  G_i = V·w_i, band [F_i, U_i] = [V·(w_i - l_i)⁺, V·(w_i + h_i)] and reserve R, every
  security has an integer u_i whose bounds carry, exactly (computed in `Fraction`), u_i ≥ 0,
  the restrictions (buy_only, sell_only, no_buy, no_sell, hold), the mode-bands fixing,
  the strict bands ⌈F_i/p_i⌉ ≤ u_i ≤ ⌊U_i/p_i⌋ and the cash bound u_i ≤ ⌊(V - R)/p_i⌋.
  A security whose orders are sized (lot L > 1 or a minimum that binds) gets binaries b
  (buy), s (sell), z (close to zero), at most one of them 1, and lot multipliers k_b, k_s:

      u_i = h_i + L·k_b - L·k_s - h_i·z,    K·b ≤ k_b ≤ M_b·b,   K·s ≤ k_s ≤ M_s·s,

  where K is the fewest lots that meet min_trade_quantity and min_trade_value and M_b, M_s
  the most lots the bounds of u_i allow. The cash row Σ p_i·u_i ≤ V - R is written in whole
  units of the prices' common denominator, with the budget rounded down and 1/2 added, so
  an integer answer within HiGHS's tolerance satisfies it exactly. Deviations d_i ≥
  ±(G_i - p_i·u_i) and, under best-effort bands, breaches o_i ≥ F_i - p_i·u_i,
  o_i ≥ p_i·u_i - U_i are in currency units, not in units of V: HiGHS's tolerances are
  absolute (1e-6 on a MIP's rows and bounds), so in units of V they allowed 1e-6·V ($16 at
  V = 16M, $1,000 at 1e9) of slack in every row, hence answers short of the optimum and
  a phase-1 optimum below zero (o_i = (F_i - p_i·u_i)/V < 0 kept by presolve) that left
  phase 2 infeasible. Strict bands minimise Σ d_i; best-effort bands first minimise Σ o_i,
  then Σ d_i with Σ o_i capped at the exact breach of phase 1's (rounded, checked) answer
  plus `OUTSIDE_SLACK`, so that answer always satisfies the cap.
  Mode bands fixes u_i = h_i for every model security already inside its band and solves
  mode full when that has no feasible answer.

HiGHS works in floating point, so its answer is only a candidate: quantities are rounded and
the cash row and bounds are re-checked exactly before an answer is returned (callers check
the rest). The relative and absolute MIP gaps are set to 0 (the default relative gap, 1e-4,
stops short of the optimum).
Every solve goes through `highs.run`, which stops HiGHS at the deadline.
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor, lcm
from typing import TYPE_CHECKING

import highspy

from order_generation.domain.errors import Infeasible, OptimizationFailed, SolverTimeout
from order_generation.domain.highs import Builder, Outcome, Status, run

if TYPE_CHECKING:
    from order_generation.domain.rebalance import RebalanceProblem

OUTSIDE_SLACK = 1e-9
"""Phase 2 of best-effort bands keeps Σ o_i ≤ phase 1's exact breach + this (currency)."""


@dataclass(frozen=True, slots=True)
class MilpSolution:
    quantities: tuple[int, ...]
    objective: float
    status: str


@dataclass(frozen=True, slots=True)
class PolicyMilpSolution:
    """HiGHS's answer to a rebalance with its policy.

    `status` is "optimal" only when HiGHS proved every phase optimal; "time_limit" when the
    time ran out (`quantities` is then the best answer found, or None), "infeasible" when no
    quantities satisfy every rule, "failed" for any other outcome (`solver_status` says
    which). `mode` is the mode solved in the end (`full` when mode bands fell back).
    `outside` (best-effort bands; 0 under strict bands) and `deviation` (PD) are computed
    exactly from `quantities`.
    """

    quantities: Mapping[str, int] | None
    status: Status
    mode: str
    solver_status: str
    outside: Fraction | None = None
    deviation: Fraction | None = None

    def require(self) -> "PolicyMilpSolution":
        """This solution if optimal, else the error of the service's family for its status."""
        details = {"solver_status": self.solver_status}
        if self.status == "optimal":
            return self
        if self.status == "infeasible":
            raise Infeasible("no feasible solution exists under the policy", details)
        if self.status == "time_limit":
            raise SolverTimeout("the MILP solver passed its time limit", details)
        raise OptimizationFailed(f"the MILP solver found no optimum: {self.solver_status}", details)


def minimise_deviation(
    prices: Sequence[Decimal],
    targets: Sequence[Decimal],
    lows: Sequence[int],
    highs: Sequence[int],
    budget: Decimal,
    *,
    time_limit: float,
    start: Sequence[int] | None = None,
) -> MilpSolution:
    """Min Σ|T_i - P_i·u_i| over integer u in [lo, hi] with Σ P_i·u_i ≤ B, by HiGHS."""
    n = len(prices)
    if n == 0:
        return MilpSolution((), 0.0, "Optimal")
    model = Builder()
    units = [model.column(lo, hi, integer=True) for lo, hi in zip(lows, highs, strict=True)]
    deviations = []
    for u, price, target in zip(units, prices, targets, strict=True):
        d = model.column(0, highspy.kHighsInf)
        deviations.append(d)
        model.row(float(target), highspy.kHighsInf, [(d, 1.0), (u, float(price))])
        model.row(-float(target), highspy.kHighsInf, [(d, 1.0), (u, -float(price))])
    model.row(
        -highspy.kHighsInf,
        float(budget),
        [(u, float(p)) for u, p in zip(units, prices, strict=True)],
    )
    begin = None if start is None else dict(zip(units, map(float, start), strict=True))
    built = model.build(cost=dict.fromkeys(deviations, 1.0), start=begin)
    outcome = run(built, time.monotonic() + time_limit)
    if outcome.kind == "time_limit":
        raise SolverTimeout(
            f"the MILP solver passed its time limit of {time_limit:.1f} s",
            {"solver_status": outcome.solver_status},
        )
    if outcome.kind != "optimal" or outcome.values is None:
        raise OptimizationFailed(
            f"the MILP solver found no optimum: {outcome.solver_status}",
            {"solver_status": outcome.solver_status},
        )
    quantities = tuple(round(v) for v in outcome.values[:n])
    assert outcome.objective is not None
    return MilpSolution(quantities, outcome.objective, outcome.solver_status)


# --- the policy formulation -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Security:
    """One security of the union, its data exact."""

    security_id: str
    held: int
    price: Fraction
    target: Fraction
    goal: Fraction
    floor: Fraction
    ceiling: Fraction
    lot: int
    least: int
    """The fewest lots an order may be (0 when orders are not sized)."""
    low: int
    high: int
    """u's bounds from u ≥ 0, the restrictions, the strict band and the cash row."""


@dataclass(frozen=True, slots=True)
class _Rebalance:
    """The problem restated exactly; `budget` is V - R, what the quantities may be worth."""

    securities: tuple[_Security, ...]
    value: Fraction
    budget: Fraction
    best_effort: bool


def solve_policy_milp(problem: "RebalanceProblem", *, time_limit: float) -> PolicyMilpSolution:
    """The rebalance with its policy, as a MILP solved by HiGHS (see the module docstring)."""
    deadline = time.monotonic() + time_limit
    mode = problem.policy.mode
    if mode != "bands":
        return _solve_mode(problem, mode, deadline)
    kept = _solve_mode(problem, "bands", deadline)
    if kept.status != "infeasible":
        return kept
    return _solve_mode(problem, "full", deadline)


def _solve_mode(problem: "RebalanceProblem", mode: str, deadline: float) -> PolicyMilpSolution:
    rebalance = _restate(problem, fix_in_band=mode == "bands")
    if rebalance is None:
        return PolicyMilpSolution(None, "infeasible", mode, "infeasible before solving")
    if not rebalance.securities:
        return PolicyMilpSolution({}, "optimal", mode, "Optimal", Fraction(0), Fraction(0))
    if any(s.low > s.high for s in rebalance.securities):
        return PolicyMilpSolution(None, "infeasible", mode, "empty bounds before solving")
    model, units, deviations, breaches = _formulate(rebalance)
    start: dict[int, float] | None = None
    if rebalance.best_effort:
        first = run(model.build(cost=dict.fromkeys(breaches, 1.0)), deadline)
        if first.kind != "optimal" or first.values is None or first.objective is None:
            return _unsolved(rebalance, units, first, mode)
        found = _answer(rebalance, units, first, mode, "optimal")
        if found.outside is None:
            return found
        cap = float(found.outside) + OUTSIDE_SLACK
        model.row(-highspy.kHighsInf, cap, [(o, 1.0) for o in breaches])
        start = dict(enumerate(map(float, first.values)))
    outcome = run(model.build(cost=dict.fromkeys(deviations, 1.0), start=start), deadline)
    if outcome.kind != "optimal" or outcome.values is None:
        return _unsolved(rebalance, units, outcome, mode)
    return _answer(rebalance, units, outcome, mode, "optimal")


def _unsolved(
    rebalance: _Rebalance, units: list[int], outcome: "Outcome", mode: str
) -> PolicyMilpSolution:
    if outcome.kind == "time_limit" and outcome.values is not None:
        return _answer(rebalance, units, outcome, mode, "time_limit")
    return PolicyMilpSolution(None, outcome.kind, mode, outcome.solver_status)


def _answer(
    rebalance: _Rebalance, units: list[int], outcome: "Outcome", mode: str, status: Status
) -> PolicyMilpSolution:
    assert outcome.values is not None
    quantities = [round(outcome.values[u]) for u in units]
    securities = rebalance.securities
    inside = all(s.low <= u <= s.high for s, u in zip(securities, quantities, strict=True))
    spent = sum(s.price * u for s, u in zip(securities, quantities, strict=True))
    if not inside or spent > rebalance.budget:
        return PolicyMilpSolution(None, "failed", mode, f"{outcome.solver_status}, inexact")
    outside = Fraction(0)
    if rebalance.best_effort:
        outside = sum(
            (_outside(s, s.price * u) for s, u in zip(securities, quantities, strict=True)),
            Fraction(0),
        )
    deviation = sum(
        (abs(s.goal - s.price * u) for s, u in zip(securities, quantities, strict=True)),
        Fraction(0),
    )
    by_id = {s.security_id: u for s, u in zip(securities, quantities, strict=True)}
    return PolicyMilpSolution(by_id, status, mode, outcome.solver_status, outside, deviation)


def _outside(security: _Security, amount: Fraction) -> Fraction:
    return max(Fraction(0), security.floor - amount, amount - security.ceiling)


def _restate(problem: "RebalanceProblem", *, fix_in_band: bool) -> _Rebalance | None:
    """The problem's data exactly, with each u's bounds; None when the withdrawal or the
    reserve leaves less than nothing to invest."""
    policy = problem.policy
    model = {p.security_id: p for p in problem.positions}
    ids = [*model, *sorted(s for s in problem.holdings if s not in model)]
    price = {s: Fraction(problem.prices[s]) for s in ids}
    held = {s: problem.holdings.get(s, 0) for s in ids}
    mv = Fraction(problem.cash) + sum(held[s] * price[s] for s in ids)
    withdraw = Fraction(policy.withdraw)
    if withdraw > mv:
        return None
    value = mv - withdraw
    budget = value - max(Fraction(policy.min_cash), Fraction(policy.min_cash_fraction) * value)
    if budget < 0:
        return None
    strict = policy.bands == "strict"
    securities = []
    for s in ids:
        position = model.get(s)
        target = Fraction(position.target) if position else Fraction(0)
        low_drift = Fraction(position.low_drift) if position else Fraction(0)
        high_drift = Fraction(position.high_drift) if position else Fraction(0)
        p, h = price[s], held[s]
        band_floor = value * max(target - low_drift, Fraction(0))
        band_ceiling = value * (target + high_drift)
        low, high = 0, floor(budget / p)
        if not policy.may_buy(s):
            high = min(high, h)
        if not policy.may_sell(s):
            low = max(low, h)
        if fix_in_band and target > 0 and band_floor <= h * p <= band_ceiling:
            low, high = max(low, h), min(high, h)
        if strict:
            low, high = max(low, ceil(band_floor / p)), min(high, floor(band_ceiling / p))
        lot = policy.lot(s)
        shares = max(policy.min_trade_quantity, ceil(Fraction(policy.min_trade_value) / p))
        least = max(1, ceil(shares / lot)) if lot > 1 or shares > 1 else 0
        securities.append(
            _Security(
                s, h, p, target, value * target, band_floor, band_ceiling, lot, least, low, high
            )
        )
    return _Rebalance(tuple(securities), value, budget, not strict)


def _formulate(rebalance: _Rebalance) -> tuple["Builder", list[int], list[int], list[int]]:
    """The model without costs, and the columns of u, d and (best effort) o."""
    inf = highspy.kHighsInf
    model = Builder()
    units, deviations, breaches = [], [], []
    for s in rebalance.securities:
        u = model.column(s.low, s.high, integer=True)
        units.append(u)
        if s.least:
            _size(model, s, u)
        price = float(s.price)
        d = model.column(0, inf)
        deviations.append(d)
        goal = float(s.goal)
        model.row(goal, inf, [(d, 1.0), (u, price)])
        model.row(-goal, inf, [(d, 1.0), (u, -price)])
        if rebalance.best_effort:
            o = model.column(0, inf)
            breaches.append(o)
            model.row(float(s.floor), inf, [(o, 1.0), (u, price)])
            model.row(-float(s.ceiling), inf, [(o, 1.0), (u, -price)])
    unit = lcm(*(s.price.denominator for s in rebalance.securities))
    budget = floor(rebalance.budget * unit) + 0.5
    cash = [(u, float(s.price * unit)) for u, s in zip(units, rebalance.securities, strict=True)]
    model.row(-inf, budget, cash)
    return model, units, deviations, breaches


def _size(model: "Builder", s: _Security, u: int) -> None:
    """u = h + L·k_b - L·k_s - h·z with at most one of buy b, sell s, close z (see above)."""
    most_bought = max(s.high - s.held, 0) // s.lot
    most_sold = max(s.held - s.low, 0) // s.lot
    entries: list[tuple[int, float]] = [(u, 1.0)]
    choices: list[tuple[int, float]] = []
    for most, sign in ((most_bought, -1.0), (most_sold, 1.0)):
        if most >= s.least:
            chosen = model.column(0, 1, integer=True)
            lots = model.column(0, most, integer=True)
            model.row(0, highspy.kHighsInf, [(lots, 1.0), (chosen, -float(s.least))])
            model.row(-highspy.kHighsInf, 0, [(lots, 1.0), (chosen, -float(most))])
            entries.append((lots, sign * s.lot))
            choices.append((chosen, 1.0))
    if s.held != 0 and s.low == 0:
        close = model.column(0, 1, integer=True)
        entries.append((close, float(s.held)))
        choices.append((close, 1.0))
    if choices:
        model.row(-highspy.kHighsInf, 1, choices)
    model.row(s.held, s.held, entries)
