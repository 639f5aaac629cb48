"""The rebalance problem, its result, and `solve`, the one exact entry point.

Notation: cash C, holdings u_i, prices p_i > 0, model weight w_i with drifts l_i and h_i
(all three 0 for a held security the model lacks). The market value MV = C + Σ u_i·p_i is
fixed. `solve` returns integers u'_i that minimise

    PD(u') = Σ_i |MV·w_i - u'_i·p_i|
    subject to  MV·(w_i - l_i) ≤ u'_i·p_i ≤ MV·(w_i + h_i)  and  u'_i ≥ 0  for every i,
                cash after = MV - Σ_i u'_i·p_i ≥ 0.

Every term is convex and piecewise linear in its own u'_i, so without the cash row the
problem separates: n_i, the integer nearest to MV·w_i/p_i (a tie goes to the lower one),
clipped to the band lo_i = ⌈MV·(w_i - l_i)/p_i⌉⁺ ≤ u'_i ≤ ⌊MV·(w_i + h_i)/p_i⌋, minimises
term i. If Σ n_i·p_i ≤ MV, n is optimal. Otherwise cash binds; some optimum then has
lo_i ≤ u'_i ≤ n_i for every i (lowering a quantity toward n_i never raises its term and
frees cash), and over that box each share above lo_i lowers PD by p_i, except the share
that crosses the target. What remains is a bounded knapsack, solved exactly by
`knapsack.fill`; if that search spends half the time limit, the HiGHS MILP in `milp` gets
the rest, starting from the search's best answer (HiGHS is exact up to its floating-point
tolerances, so its answer is re-checked and kept only if it is feasible and better).

Ties are broken deterministically: of two equally near quantities the lower is taken, and
the search keeps the first optimum it meets in a fixed order (model order, then held
securities by id), so the same input always gives the same orders.

Arithmetic is exact: `Decimal` with unlimited precision (an inexact operation raises) and
integers in the search. The answer is re-checked against every constraint before it is
returned; a violation is a bug and raises `ServiceError`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_05UP, ROUND_HALF_EVEN, Context, Decimal, localcontext
from time import perf_counter
from typing import Literal

from order_generation.domain import milp
from order_generation.domain.allocation import EXACT, ZERO, Book, settle
from order_generation.domain.errors import Infeasible, InvalidInput, ServiceError, SolverTimeout
from order_generation.domain.models import Position

SEARCH_SHARE = 0.5
"""The search may use this share of the time limit before the MILP takes over."""
NODE_LIMIT = 50_000_000
"""A safety net behind SEARCH_SHARE (a million nodes take about a second)."""
_ZERO4 = Decimal("0.0000")
_STICKY = Context(prec=34, rounding=ROUND_05UP)


@dataclass(frozen=True)
class RebalanceProblem:
    """A portfolio to rebalance onto a model's positions; validated on construction."""

    positions: tuple[Position, ...]
    holdings: Mapping[str, int]
    cash: Decimal
    prices: Mapping[str, Decimal]

    def __post_init__(self) -> None:
        _check_positions(self.positions)
        _check_holdings(self.holdings)
        if not isinstance(self.cash, Decimal) or not self.cash.is_finite():
            raise InvalidInput("cash", "must be a finite decimal")
        _check_prices(self)


@dataclass(frozen=True, slots=True)
class Trade:
    security_id: str
    side: Literal["BUY", "SELL"]
    quantity: int


@dataclass(frozen=True, slots=True)
class Drift:
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

    @property
    def original_market_value(self) -> Decimal:
        return self.original_quantity * self.price

    @property
    def adjusted_market_value(self) -> Decimal:
        return self.adjusted_quantity * self.price


@dataclass(frozen=True)
class RebalanceResult:
    """The optimum; `method` says which path proved it (nearest, search or milp)."""

    quantities: Mapping[str, int]
    trades: tuple[Trade, ...]
    drifts: tuple[Drift, ...]
    market_value: Decimal
    cash_before: Decimal
    cash_after: Decimal
    objective: Decimal
    status: str
    solve_seconds: float
    method: str


def solve(problem: RebalanceProblem, *, time_limit: float = 30.0) -> RebalanceResult:
    """The exact integer optimum of the rebalance problem (see the module docstring).

    `time_limit` (seconds) bounds the binding case: the search gets half of it, the MILP the
    rest, and `SolverTimeout` follows when both run out. The separable case (about half a
    millisecond per hundred securities) always completes.
    """
    started = perf_counter()
    with localcontext(EXACT):
        book = Book.of(problem.positions, problem.holdings, problem.cash, problem.prices)
        quantities, method = _optimise(book, started + time_limit)
        objective, cash_after, amounts = _verify(book, quantities)
    return RebalanceResult(
        quantities=dict(zip(book.ids, quantities, strict=True)),
        trades=_trades(book, quantities),
        drifts=_drifts(book, quantities, amounts),
        market_value=book.mv,
        cash_before=book.cash,
        cash_after=cash_after,
        objective=objective,
        status="optimal",
        solve_seconds=perf_counter() - started,
        method=method,
    )


def _optimise(book: Book, deadline: float) -> tuple[list[int], str]:
    if book.mv < 0:
        raise Infeasible(
            f"no feasible solution exists: the market value {book.mv} is negative "
            "(short positions outweigh cash and long holdings)",
            {"solver_status": "infeasible", "market_value": str(book.mv)},
        )
    nearest, spent = book.nearest()
    if spent <= book.mv:
        return nearest, "nearest"
    now = perf_counter()
    search_deadline = now + (deadline - now) * SEARCH_SHARE
    quantities, proven = settle(book, nearest, search_deadline, NODE_LIMIT)
    if proven:
        return quantities, "search"
    return _milp_fallback(book, quantities, deadline), "milp"


def _milp_fallback(book: Book, incumbent: list[int], deadline: float) -> list[int]:
    """HiGHS from the search's incumbent; its float answer counts only if it checks out."""
    best = _audit(book, incumbent).objective
    securities = range(len(book.ids))
    try:
        answer = milp.minimise_deviation(
            book.prices,
            book.goals,
            [book.lowest(i) for i in securities],
            [book.highest(i) for i in securities],
            book.mv,
            time_limit=_remaining(deadline, best),
            start=incumbent,
        )
    except SolverTimeout as timeout:
        raise _timeout(best, timeout.details["solver_status"]) from timeout
    candidate = _audit(book, list(answer.quantities))
    if not candidate.problems and candidate.objective < best:
        return list(answer.quantities)
    return incumbent


def _remaining(deadline: float, best: Decimal) -> float:
    remaining = deadline - perf_counter()
    if remaining <= 0:
        raise _timeout(best, "time_limit")
    return remaining


def _timeout(best: Decimal, status: str) -> SolverTimeout:
    return SolverTimeout(
        "no solution within the time limit: the search and then the MILP solver ran out of "
        "time before proving an optimum",
        {"solver_status": status, "best_objective_found": str(best)},
    )


def _verify(book: Book, quantities: list[int]) -> tuple[Decimal, Decimal, list[Decimal]]:
    """PD, cash after and amounts held, once every constraint holds; a violation is a bug."""
    audit = _audit(book, quantities)
    if audit.problems:
        raise ServiceError(
            "internal error: the rebalance result failed its exact check",
            {"violations": audit.problems[:10]},
        )
    return audit.objective, audit.cash_after, audit.amounts


@dataclass(frozen=True, slots=True)
class _Audit:
    problems: list[str]
    objective: Decimal
    cash_after: Decimal
    amounts: list[Decimal]


def _audit(book: Book, quantities: list[int]) -> _Audit:
    """Every constraint checked from its definition; then PD and the cash after the trades."""
    problems: list[str] = []
    amounts: list[Decimal] = []
    objective = spent = ZERO
    cash_after = book.cash
    terms = zip(
        book.ids,
        quantities,
        book.held,
        book.prices,
        book.goals,
        book.floors,
        book.ceilings,
        strict=True,
    )
    for sid, u, before, p, goal, low, high in terms:
        if type(u) is not int or u < 0:
            problems.append(f"{sid}: quantity {u!r} is not a whole number >= 0")
            amounts.append(ZERO)
            continue
        amount = u * p
        amounts.append(amount)
        if not low <= amount <= high:
            problems.append(f"{sid}: {u} shares fall outside [{low}, {high}]")
        objective += abs(goal - amount)
        spent += amount
        if u != before:
            cash_after -= (u - before) * p
    if cash_after < 0:
        problems.append(f"the trades leave cash of {cash_after}, below 0")
    if cash_after + spent != book.mv:
        problems.append(f"the market value changed from {book.mv} to {cash_after + spent}")
    return _Audit(problems, objective, cash_after, amounts)


def _trades(book: Book, quantities: list[int]) -> tuple[Trade, ...]:
    return tuple(
        [
            Trade(sid, "BUY" if after > before else "SELL", abs(after - before))
            for sid, before, after in zip(book.ids, book.held, quantities, strict=True)
            if after != before
        ]
    )


def _drifts(book: Book, quantities: list[int], amounts: list[Decimal]) -> tuple[Drift, ...]:
    """actual = u'·p/MV and actual_drift = 1 - actual/target, each rounded to 4 decimals.

    Each quotient is taken with round-05up at 34 digits, which keeps enough information for
    the half-even rounding to 4 decimals to be exact (no double-rounding error).
    """
    mv = book.mv
    with localcontext(_STICKY):
        actuals = [(a / mv).quantize(_ZERO4, ROUND_HALF_EVEN) if mv else _ZERO4 for a in amounts]
        drifts = [
            ((w - a) / w).quantize(_ZERO4, ROUND_HALF_EVEN) if w else _ZERO4
            for w, a in zip(book.targets, actuals, strict=True)
        ]
    rows = map(
        Drift,
        book.ids,
        book.prices,
        book.held,
        quantities,
        book.targets,
        book.low_drifts,
        book.high_drifts,
        actuals,
        drifts,
    )
    return tuple(rows)


def _check_positions(positions: tuple[Position, ...]) -> None:
    seen: set[str] = set()
    for position in positions:
        if position.security_id in seen:
            raise InvalidInput("positions", f"security {position.security_id} appears twice")
        seen.add(position.security_id)


def _check_holdings(holdings: Mapping[str, int]) -> None:
    for sid, quantity in holdings.items():
        if type(quantity) is not int:
            raise InvalidInput(f"holdings.{sid}", "must be a whole number of shares")


def _check_prices(problem: RebalanceProblem) -> None:
    for sid in (*(p.security_id for p in problem.positions), *problem.holdings):
        price = problem.prices.get(sid)
        if price is None:
            raise InvalidInput(f"prices.{sid}", "a price is required for every security")
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise InvalidInput(f"prices.{sid}", "must be a decimal greater than 0")
