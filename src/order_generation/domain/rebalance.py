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

Arithmetic is exact and in integers: `allocation.Book` reads prices, cash and targets as
whole numbers of a power of ten (every finite `Decimal` is one), drifts only where a band
has to be computed, and the search, the nearest quantities and the re-check of every
constraint before the result is returned (`_report`) all work on those integers. A
violation is a bug and raises `ServiceError`. The totals are written back as `Decimal` once,
with the exponents `Decimal` arithmetic on the input would give them, and actual = u'·p/MV
and actual_drift = (w - actual)/w are rounded half-even to 4 decimals by integer division.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import compress, repeat
from operator import mul, sub
from time import perf_counter
from typing import Literal, NamedTuple

from order_generation.domain import milp
from order_generation.domain.allocation import (
    EXACT,
    TARGET_DIGITS,
    ZERO4,
    Book,
    dot,
    settle,
    write,
)
from order_generation.domain.errors import Infeasible, InvalidInput, ServiceError, SolverTimeout
from order_generation.domain.models import Position
from order_generation.domain.policy import DEFAULT_POLICY, Policy

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


class Breach(NamedTuple):
    """A band the answer leaves under best-effort bands: its floor and ceiling amounts, the
    amount held after, by how much it lies outside, and why no allowed quantity is inside."""

    security_id: str
    floor: Decimal
    ceiling: Decimal
    amount: Decimal
    outside: Decimal
    reason: str


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
    book = Book.of(problem.positions, problem.holdings, problem.cash, problem.prices)
    quantities, method = _optimise(book, started + time_limit)
    report = _report(book, quantities)
    if report.problems:
        raise ServiceError(
            "internal error: the rebalance result failed its exact check",
            {"violations": report.problems[:10]},
        )
    return RebalanceResult(
        quantities=dict(zip(book.ids, quantities, strict=True)),
        trades=tuple(report.trades),
        drifts=tuple(report.drifts),
        market_value=book.mv,
        cash_before=book.cash,
        cash_after=_cash_after(book, quantities, report),
        objective=write(report.objective, book.digits, book.objective_exponent()),
        status="optimal",
        solve_seconds=perf_counter() - started,
        method=method,
    )


def _optimise(book: Book, deadline: float) -> tuple[list[int], str]:
    if book.mv_units < 0:
        raise Infeasible(
            f"no feasible solution exists: the market value {book.mv} is negative "
            "(short positions outweigh cash and long holdings)",
            {"solver_status": "infeasible", "market_value": str(book.mv)},
        )
    nearest, spent = book.nearest()
    if spent <= book.whole:
        return nearest, "nearest"
    now = perf_counter()
    search_deadline = now + (deadline - now) * SEARCH_SHARE
    quantities, proven = settle(book, nearest, search_deadline, NODE_LIMIT)
    if proven:
        return quantities, "search"
    return _milp_fallback(book, quantities, deadline), "milp"


def _milp_fallback(book: Book, incumbent: list[int], deadline: float) -> list[int]:
    """HiGHS from the search's incumbent; its float answer counts only if it checks out."""
    best = _report(book, incumbent).objective
    securities = range(len(book.ids))
    try:
        answer = milp.minimise_deviation(
            book.prices,
            [book.goal_decimal(i) for i in securities],
            [book.lowest(i) for i in securities],
            [book.highest(i) for i in securities],
            book.mv,
            time_limit=_remaining(deadline, book, best),
            start=incumbent,
        )
    except SolverTimeout as timeout:
        raise _timeout(book, best, timeout.details["solver_status"]) from timeout
    candidate = _report(book, list(answer.quantities))
    if not candidate.problems and candidate.objective < best:
        return list(answer.quantities)
    return incumbent


def _remaining(deadline: float, book: Book, best: int) -> float:
    remaining = deadline - perf_counter()
    if remaining <= 0:
        raise _timeout(book, best, "time_limit")
    return remaining


def _timeout(book: Book, best: int, status: str) -> SolverTimeout:
    found = write(best, book.digits, book.objective_exponent())
    return SolverTimeout(
        "no solution within the time limit: the search and then the MILP solver ran out of "
        "time before proving an optimum",
        {"solver_status": status, "best_objective_found": str(found)},
    )


class _Report(NamedTuple):
    """What the exact check found wrong (nothing, for a result), PD and the cash after (in the
    book's units), whether any trade moves cash, and the rows of the result."""

    problems: list[str]
    objective: int
    cash_after: int
    traded: bool
    drifts: list[Drift]
    trades: list[Trade]


_FOUR_PLACES: dict[int, Decimal] = {}
"""n -> Decimal n·10^-4 (exponent -4): shared, immutable; bounded."""
_FOUR_PLACES_LIMIT = 1 << 15
_MINUS_ZERO4 = Decimal("-0.0000")


def _four_places(n: int) -> Decimal:
    value = Decimal(n).scaleb(-4, EXACT)
    if len(_FOUR_PLACES) < _FOUR_PLACES_LIMIT:
        _FOUR_PLACES[n] = value
    return value


def _report(book: Book, quantities: list[int]) -> _Report:
    """Every constraint checked on `quantities` in integers, with PD, the cash after the
    trades, a drift row per security and a trade per changed quantity.

    Each quantity must be a whole number >= 0 whose amount u'·p lies in its band: proven by
    the drift shortcut (l_i, h_i ≥ τ and the amount within `slack` of the goal) or checked
    against the band's definition. Cash less what the trades cost must be >= 0 and equal MV
    less what the quantities are worth.

    actual = u'·p/MV and actual_drift = (w - actual)/w are rounded half-even to 4 decimals,
    the latter from the rounded actual (0 when w is 0; actual is 0 when MV is 0). In the
    book's units, 10^4·actual = 10^4·amount/whole and 10^4·actual_drift = (10^4·W - a·10^d)/W
    for W = w·10^d and a = 10^4·actual.
    """
    if not set(map(type, quantities)) <= {int}:
        return _Report(["a quantity is not a whole number"], 0, 0, False, [], [])
    problems: list[str] = []
    if quantities and min(quantities) < 0:
        below = zip(book.ids, quantities, strict=True)
        problems += [f"{sid}: quantity {u} is below 0" for sid, u in below if u < 0]
    objective, rows, trades = _rows(book, quantities, problems)
    spent = dot(quantities, book.share_units)
    cash_after = book.cash_units - (spent - dot(book.held, book.share_units))
    if cash_after < 0:
        left = write(cash_after, book.digits, -book.scale)
        problems.append(f"the trades leave cash of {left}, below 0")
    if cash_after + spent != book.whole:
        changed = write(cash_after + spent, book.digits, -book.scale)
        problems.append(f"the market value changed from {book.mv} to {changed}")
    return _Report(problems, objective, cash_after, bool(trades), rows, trades)


def _rows(
    book: Book, quantities: list[int], problems: list[str]
) -> tuple[int, list[Drift], list[Trade]]:
    """PD, drift rows and trades with Python integers; band violations go to `problems`.

    When w has 4 decimals and the amount is within whole/(2·10^4) of the goal, 10^4·actual
    rounds to 10^4·w and actual_drift is 0 (`Book.fours`): only the other rows divide.
    """
    n = len(quantities)
    gaps = list(map(abs, map(sub, map(mul, quantities, book.share_units), book.goals)))
    if gaps and max(gaps) > book.slack:
        _check_bands(
            book, quantities, list(compress(range(n), map(book.slack.__lt__, gaps))), problems
        )
    else:
        _check_bands(book, quantities, [], problems)
    whole = book.whole
    actuals: list[Decimal | None] = list(book.fours)
    drifts = [ZERO4] * n
    if whole > 0:
        near = (whole - 1) // 20_000
        divide = list(compress(range(n), map(near.__lt__, gaps)))
        if book.weight_digits > TARGET_DIGITS:  # a target may have more than 4 decimals
            divide = sorted({*divide, *(i for i, x in enumerate(book.fours) if x is None)})
    else:
        divide = list(range(n))
    one = 10**book.weight_digits
    four = _FOUR_PLACES.get
    for i in divide:
        if whole > 0:
            a, rest = divmod(quantities[i] * book.share_units[i] * 10_000, whole)
            rest += rest
            if rest > whole or (rest == whole and a & 1):
                a += 1
        else:
            a = 0
        actual = four(a)
        actuals[i] = _four_places(a) if actual is None else actual
        weight = book.target_units[i]
        drifts[i] = _drift(weight, a, one) if weight else ZERO4
    rows = drift_rows(book, quantities, actuals, drifts)
    new = tuple.__new__
    trades = [
        new(Trade, (sid, "BUY", u - b)) if u > b else new(Trade, (sid, "SELL", b - u))
        for sid, b, u in zip(book.ids, book.held, quantities, strict=True)
        if u != b
    ]
    return sum(gaps), rows, trades


def drift_rows(
    book: Book,
    quantities: list[int],
    actuals: Sequence[Decimal | None],
    drifts: Sequence[Decimal],
) -> list[Drift]:
    """A drift row per security of the book, in its order, from the columns `_rows` computes."""
    columns = zip(
        book.ids,
        book.prices,
        book.held,
        quantities,
        book.targets,
        book.low_drifts,
        book.high_drifts,
        actuals,
        drifts,
        repeat(False, len(quantities)),
        strict=True,
    )
    return list(map(tuple.__new__, repeat(Drift), columns))


def _check_bands(book: Book, quantities: list[int], far: list[int], problems: list[str]) -> None:
    """The exact band check for every security the drift shortcut does not prove."""
    for i in book.unproven(far):
        u = quantities[i]
        if not book.within(i, u * book.share_units[i]):
            floor, ceiling = book.band(i)
            problems.append(f"{book.ids[i]}: {u} shares fall outside [{floor}, {ceiling}]")


def _drift(weight: int, a: int, one: int) -> Decimal:
    """(w - a/10^4)/w to 4 decimals, half-even, for w = weight/one (not 0): 10^4 times it is
    (10^4·weight - a·one)/weight."""
    top = weight * 10_000 - a * one
    if weight < 0:
        top, weight = -top, -weight
    d, rest = divmod(top, weight)
    rest += rest
    if rest > weight or (rest == weight and d & 1):
        d += 1
    if not d and top < 0:
        return _MINUS_ZERO4
    drift = _FOUR_PLACES.get(d)
    return _four_places(d) if drift is None else drift


def _cash_after(book: Book, quantities: list[int], report: _Report) -> Decimal:
    """Cash after, written as `Decimal` arithmetic on the input writes it: the cash itself
    when no trade moves it."""
    if not report.traded:
        return book.cash
    exponent = book.cash_after_exponent(quantities)
    return write(report.cash_after, book.digits, exponent)


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
