"""The rebalance problem, its result, and `solve`, the one exact entry point.

Notation: cash C, holdings h_i, prices p_i > 0, model weight w_i with drifts l_i and r_i
(all three 0 for a held security the model lacks); the policy's withdrawal W and cash reserve
R (`policy`). The market value MV = C + Σ h_i·p_i is fixed, and V = MV - W is what stays
invested. `solve` returns integers u_i in the sets A_i the policy allows that minimise

    PD(u) = Σ_i |V·w_i - u_i·p_i|
    subject to  V·(w_i - l_i)⁺ ≤ u_i·p_i ≤ V·(w_i + r_i)  for every i   (the bands),
                Σ_i u_i·p_i ≤ V - R                                  (the cash row),

or, under best-effort bands, minimise first the total amount outside the bands, then PD.

Each term f_i is convex in its own u_i, so without the cash row the problem separates: the
allowed quantity n_i nearest the goal minimises term i (`terms.Term.nearest`). If
Σ n_i·p_i ≤ V - R, n is optimal. Otherwise cash binds; some optimum then has u_i ≤ n_i for
every i (lowering a quantity to n_i never raises its term and frees cash), and below n_i each
term falls as u_i rises, at a rate per dollar that never rises. Climbing from the lowest
allowed quantities toward n is then a knapsack over one ladder per security
(`terms.Term.ladder`), solved exactly by `knapsack.fill`. If that search spends half the time
limit, the HiGHS MILP in `milp` gets the rest; its float answer is kept only if it passes the
exact check and is better, and it is never called proven ("feasible", not "optimal").

Mode `bands` first solves with every model security that lies in its band held fixed; when
that has no feasible answer it solves the `full` problem, and `RebalanceResult.mode` says so.

Ties are broken deterministically: of two equally near quantities the lower is taken, and
the search keeps the first optimum it meets in a fixed order (model order, then held
securities by id), so the same input always gives the same orders.

Arithmetic is exact and in integers: `terms.read` reads every amount as a whole number of a
power of ten of dollars (every finite `Decimal` is one), and `_check` re-checks every rule of
the policy on those integers before the result is returned; a violation is a bug and raises
`ServiceError`. actual = u·p/V and actual_drift = (w - actual)/w are rounded half-even to 4
decimals by integer division; the totals are computed in `Decimal` from the input.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from math import sumprod
from time import perf_counter
from typing import Literal, NamedTuple

from order_generation.domain import milp
from order_generation.domain.drifts import Drift, drift_rows
from order_generation.domain.errors import Infeasible, InvalidInput, ServiceError, SolverTimeout
from order_generation.domain.explanations import (
    Breach,
    band,
    bands_left,
    check_value,
    infeasible,
    overspent,
    why_outside,
)
from order_generation.domain.knapsack import fill
from order_generation.domain.models import Position
from order_generation.domain.policy import DEFAULT_POLICY, Policy
from order_generation.domain.terms import EXACT, Book, Run, read

SEARCH_SHARE = 0.5
"""The search may use this share of the time limit before the MILP takes over."""
NODE_LIMIT = 50_000_000
"""A safety net behind SEARCH_SHARE (a million nodes take about a second)."""


@dataclass(frozen=True)
class RebalanceProblem:
    """A portfolio to rebalance onto a model's positions; validated on construction."""

    positions: tuple[Position, ...]
    holdings: Mapping[str, int]
    cash: Decimal
    prices: Mapping[str, Decimal]
    policy: Policy = DEFAULT_POLICY

    def __post_init__(self) -> None:
        _check_positions(self.positions)
        _check_holdings(self.holdings)
        if not isinstance(self.cash, Decimal) or not self.cash.is_finite():
            raise InvalidInput("cash", "must be a finite decimal")
        _check_prices(self)


class Trade(NamedTuple):
    security_id: str
    side: Literal["BUY", "SELL"]
    quantity: int


@dataclass(frozen=True, slots=True)
class RebalanceResult:
    """The answer; `method` says which path found it (nearest, search or milp).

    `status` is "optimal" when the answer is proven optimal, "feasible" when it satisfies
    every constraint but the MILP fallback could not prove it optimal. `policy` is the policy
    applied and `mode` the mode used in the end (`full` when `bands` left no feasible answer).
    """

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
    policy: Policy = DEFAULT_POLICY
    mode: str = "full"
    breaches: tuple[Breach, ...] = ()


def solve(problem: RebalanceProblem, *, time_limit: float = 30.0) -> RebalanceResult:
    """The exact integer optimum of the rebalance problem (see the module docstring).

    `time_limit` (seconds) bounds the binding case: the search gets half of it, the MILP the
    rest, and `SolverTimeout` follows when both run out. The separable case (a fraction of a
    millisecond per hundred securities) always completes.
    """
    started = perf_counter()
    deadline = started + time_limit
    mode = problem.policy.mode
    if mode == "bands":
        try:
            answer = _answer(problem, deadline, keep_in_band=True)
        except Infeasible:
            answer, mode = _answer(problem, deadline, keep_in_band=False), "full"
    else:
        answer = _answer(problem, deadline, keep_in_band=False)
    book, quantities, method, status = answer
    cash_after = _cash_after(problem, book, quantities)
    problems = _check(problem, book, quantities, cash_after)
    if problems:
        raise ServiceError(
            "internal error: the rebalance result failed its exact check",
            {"violations": problems[:10]},
        )
    breaches = (
        bands_left(problem, book, quantities) if problem.policy.bands == "best_effort" else ()
    )
    breached = {b.security_id for b in breaches}
    return RebalanceResult(
        quantities=dict(zip(book.ids, quantities, strict=True)),
        trades=_trades(book, quantities),
        drifts=tuple(drift_rows(book, quantities, breached)),
        market_value=book.market_value,
        cash_before=problem.cash,
        cash_after=cash_after,
        objective=Decimal(_deviation(book, quantities)).scaleb(book.exponent),
        status=status,
        solve_seconds=perf_counter() - started,
        method=method,
        policy=problem.policy,
        mode=mode,
        breaches=breaches,
    )


class _Answer(NamedTuple):
    book: Book
    quantities: list[int]
    method: str
    status: str


def _answer(problem: RebalanceProblem, deadline: float, *, keep_in_band: bool) -> _Answer:
    book = read(
        problem.positions,
        problem.holdings,
        problem.cash,
        problem.prices,
        problem.policy,
        keep_in_band=keep_in_band,
    )
    check_value(problem, book)
    strict = problem.policy.bands == "strict"
    runs = [term.runs(book.budget, strict) for term in book.terms]
    for sid, term, allowed in zip(book.ids, book.terms, runs, strict=True):
        if not allowed:
            raise infeasible(sid, why_outside(problem, book, sid, term))
    nearest = [term.nearest(allowed) for term, allowed in zip(book.terms, runs, strict=True)]
    if _spent(book, nearest) <= book.budget:
        return _Answer(book, nearest, "nearest", "optimal")
    return _settle(problem, book, runs, nearest, deadline)


def _settle(
    problem: RebalanceProblem,
    book: Book,
    runs: list[list[Run]],
    nearest: list[int],
    deadline: float,
) -> _Answer:
    """The binding case: climb from the lowest allowed quantities toward the nearest ones."""
    lowest = [allowed[0].first for allowed in runs]
    capacity = book.budget - _spent(book, lowest)
    if capacity < 0:
        raise overspent(problem, book, lowest)
    ladders = tuple(
        term.ladder(allowed, n) for term, allowed, n in zip(book.terms, runs, nearest, strict=True)
    )
    now = perf_counter()
    found = fill(
        ladders, capacity, deadline=now + (deadline - now) * SEARCH_SHARE, node_limit=NODE_LIMIT
    )
    quantities = [
        base
        + sum(count * rung.weight // term.price for count, rung in zip(steps, ladder, strict=True))
        for term, ladder, base, steps in zip(book.terms, ladders, lowest, found.steps, strict=True)
    ]
    if found.proven:
        return _Answer(book, quantities, "search", "optimal")
    return _milp_fallback(problem, book, quantities, deadline)


def _spent(book: Book, quantities: list[int]) -> int:
    total: int = sumprod(quantities, [term.price for term in book.terms])  # type: ignore[assignment]
    return total  # math.sumprod keeps integers whole (typeshed says float)


def _milp_fallback(
    problem: RebalanceProblem, book: Book, incumbent: list[int], deadline: float
) -> _Answer:
    """HiGHS for the rest of the time; its float answer counts only if it checks out better."""
    best = _objective(book, incumbent)
    remaining = deadline - perf_counter()
    if remaining <= 0:
        raise _timeout(book, incumbent, "time_limit")
    answer = milp.solve_policy_milp(problem, time_limit=remaining)
    if answer.quantities is not None:
        candidate = [answer.quantities[sid] for sid in book.ids]
        if not _check(problem, book, candidate) and _objective(book, candidate) < best:
            return _Answer(book, candidate, "milp", "feasible")
    if answer.status == "time_limit":
        raise _timeout(book, incumbent, answer.solver_status)
    return _Answer(book, incumbent, "milp", "feasible")


def _objective(book: Book, quantities: list[int]) -> int:
    return sum(term.cost(u) for term, u in zip(book.terms, quantities, strict=True))


def _timeout(book: Book, incumbent: list[int], status: str) -> SolverTimeout:
    found = Decimal(_deviation(book, incumbent)).scaleb(book.exponent)
    return SolverTimeout(
        "no solution within the time limit: the search and then the MILP solver ran out of "
        "time before proving an optimum",
        {"solver_status": status, "best_objective_found": str(found)},
    )


def _deviation(book: Book, quantities: list[int]) -> int:
    """PD in the book's units."""
    return sum(abs(t.goal - u * t.price) for t, u in zip(book.terms, quantities, strict=True))


def _check(
    problem: RebalanceProblem, book: Book, quantities: list[int], cash_after: Decimal | None = None
) -> list[str]:
    """Every rule of the problem and its policy, checked on `quantities`; what is broken.
    `cash_after` is what `_cash_after` gives for them, when already known."""
    policy = problem.policy
    strict = policy.bands == "strict"
    sized = policy.sizes_trades
    problems = []
    for sid, term, u in zip(book.ids, book.terms, quantities, strict=True):
        h = term.held
        if type(u) is not int or u < 0:
            problems.append(f"{sid}: quantity {u} is not a whole number >= 0")
            continue
        if u != h and not (policy.may_buy(sid) if u > h else policy.may_sell(sid)):
            problems.append(f"{sid}: the policy forbids trading {h} to {u}")
        if term.fixed and u != h:
            problems.append(f"{sid}: kept in its band by the bands mode, but traded")
        if sized and u not in (h, 0) and not _sized(policy, sid, u - h, problem.prices[sid]):
            problems.append(f"{sid}: an order of {u - h} breaks the lot or the minimum trade")
        if strict and not term.floor <= u * term.price <= term.ceiling:
            floor, ceiling = band(problem, book, sid)
            problems.append(f"{sid}: {u} shares fall outside [{floor}, {ceiling}]")
    if cash_after is None:
        cash_after = _cash_after(problem, book, quantities)
    least = policy.withdraw + book.reserve
    if cash_after < least:
        kept = f"the withdrawal and the reserve, {least}" if least else "0"
        problems.append(f"the trades leave cash of {cash_after}, below {kept}")
    return problems


def _sized(policy: Policy, security_id: str, change: int, price: Decimal) -> bool:
    size = abs(change)
    return (
        size % policy.lot(security_id) == 0
        and size >= policy.min_trade_quantity
        and size * price >= policy.min_trade_value
    )


def _cash_after(problem: RebalanceProblem, book: Book, quantities: list[int]) -> Decimal:
    """Cash less what the trades cost, in `Decimal` (the cash itself when nothing trades)."""
    traded = [
        (u - term.held) * problem.prices[sid]
        for sid, term, u in zip(book.ids, book.terms, quantities, strict=True)
        if u != term.held
    ]
    if not traded:
        return problem.cash
    with localcontext(EXACT):
        return problem.cash - sum(traded[1:], traded[0])


def _trades(book: Book, quantities: list[int]) -> tuple[Trade, ...]:
    return tuple(
        trade(sid, t.held, u)
        for sid, t, u in zip(book.ids, book.terms, quantities, strict=True)
        if u != t.held
    )


def trade(security_id: str, held: int, adjusted: int) -> Trade:
    """The order that takes a holding from `held` to `adjusted` shares (they differ)."""
    if adjusted > held:
        return Trade(security_id, "BUY", adjusted - held)
    return Trade(security_id, "SELL", held - adjusted)


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
    for sid, price in problem.prices.items():
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise InvalidInput(f"prices.{sid}", "must be a decimal greater than 0")
    for sid in (*(p.security_id for p in problem.positions), *problem.holdings):
        if sid not in problem.prices:
            raise InvalidInput(f"prices.{sid}", "a price is required for every security")
