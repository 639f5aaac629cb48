"""The engine's integer arithmetic against a plain `Decimal` and `Fraction` restatement.

`solve` reads prices, cash and targets into integers; the market value, the cash after and
the rows come out with the exponents `Decimal` arithmetic on the input would give them (PD
is compared by value: it is written in the unit the engine reads amounts in). Here every reported
figure is recomputed the straightforward way, from the problem and the quantities alone, and
compared by value and by its written form: market value, cash after, PD, each band, actual
and actual drift. The problems vary what the integer reading depends on: the decimals of
prices, cash, targets and drifts (trailing zeros and positive exponents included), targets
and drifts finer than 4 decimals, drifts below the half-share shortcut, short and extra
holdings, market value 0, and binding cash.
"""

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from order_generation.domain import rebalance
from order_generation.domain.errors import Infeasible, ServiceError
from order_generation.domain.models import Position
from order_generation.domain.rebalance import RebalanceProblem, RebalanceResult, Trade, solve
from order_generation.domain.terms import EXACT, Term

D = Decimal
ZERO = D(0)


def security_id(i: int) -> str:
    return f"S{i:023d}"


def reference(problem: RebalanceProblem, result: RebalanceResult) -> None:
    """Recompute every figure of `result` with `Decimal` arithmetic on the input, as the
    engine did before it worked in integers, and compare values and written forms."""
    model = {p.security_id: p for p in problem.positions}
    ids = [*model, *sorted(s for s in problem.holdings if s not in model)]
    assert list(result.quantities) == ids
    with localcontext(EXACT):
        mv = problem.cash + sum([q * problem.prices[s] for s, q in problem.holdings.items()], ZERO)
        objective = ZERO
        cash_after = problem.cash
        trades = []
        for s, row in zip(ids, result.drifts, strict=True):
            u = result.quantities[s]
            before = problem.holdings.get(s, 0)
            p = problem.prices[s]
            position = model.get(s)
            w, lo, hi = (
                (position.target, position.low_drift, position.high_drift)
                if position
                else (ZERO, ZERO, ZERO)
            )
            amount = u * p
            assert type(u) is int
            assert u >= 0
            assert (mv * (w - lo) if w > lo else ZERO) <= amount <= mv * (w + hi)
            objective += abs(mv * w - amount)
            if u != before:
                cash_after -= (u - before) * p
                trades.append(Trade(s, "BUY" if u > before else "SELL", abs(u - before)))
            actual = four_places(Fraction(amount) / Fraction(mv)) if mv else D("0.0000")
            drift = four_places(1 - Fraction(actual) / Fraction(w)) if w else D("0.0000")
            assert row == (s, p, before, u, w, lo, hi, actual, drift, False)
            assert (str(row.actual), str(row.actual_drift)) == (str(actual), str(drift))
    assert result.trades == tuple(trades)
    assert cash_after >= 0
    assert (str(result.market_value), str(result.cash_before)) == (str(mv), str(problem.cash))
    assert str(result.cash_after) == str(cash_after)
    assert result.objective == objective  # PD is written in the book's unit, not Decimal's


def four_places(value: Fraction) -> Decimal:
    """`value` rounded half-even to 4 decimals, written as `Decimal.quantize` writes it (a
    negative value that rounds to 0 is -0.0000)."""
    n = round(value * 10_000)
    if n == 0 and value < 0:
        return D("-0.0000")
    return D(n).scaleb(-4)


def written(draw: st.DrawFn, least: int, most: int, places: int) -> Decimal:
    """A number from `least` to `most` with up to `places` decimals, sometimes written with
    trailing zeros or, when it is a whole number of tens, with a positive exponent."""
    decimals = draw(st.integers(0, places))
    value = D(draw(st.integers(least * 10**decimals, most * 10**decimals))).scaleb(-decimals)
    form = draw(st.sampled_from(["plain", "plain", "zeros", "exponent"]))
    if form == "zeros":
        return value.quantize(D(1).scaleb(-decimals - draw(st.integers(1, 3))))
    if form == "exponent" and value and value % 10 == 0:
        return (value / 10).quantize(D(1)).scaleb(1)
    return value


def drift(draw: st.DrawFn) -> Decimal:
    kind = draw(st.sampled_from(["zero", "fine", "usual", "usual", "wide"]))
    if kind == "zero":
        return D(0).scaleb(-draw(st.integers(0, 4)))
    if kind == "fine":
        return D(draw(st.integers(1, 999))).scaleb(-draw(st.integers(4, 7)))
    if kind == "usual":
        return D(draw(st.integers(1, 100))).scaleb(-3)
    return D(draw(st.integers(1, 50))).scaleb(-2)


@st.composite
def problems(draw: st.DrawFn) -> RebalanceProblem:
    """Portfolios of every kind: new, held, short, with extra holdings, with market value 0."""
    n = draw(st.integers(1, 12))
    target_places = draw(st.sampled_from([2, 3, 3, 4, 5, 6]))
    room = 95 * 10**target_places // 100
    positions = []
    for i in range(n):
        target = D(draw(st.integers(0, max(0, room // n)))).scaleb(-target_places)
        if draw(st.booleans()):
            target = target.quantize(D(1).scaleb(-target_places - 1))
        low, high = sorted([drift(draw), drift(draw)])
        positions.append(Position(security_id(i), target, low, high))
    ids = [security_id(i) for i in range(n + draw(st.integers(0, 3)))]
    prices = {s: max(written(draw, 0, 5_000, 4), D("0.0001")) for s in ids}
    held = draw(st.lists(st.sampled_from(ids), unique=True))
    holdings = {s: draw(st.integers(-5, 400)) for s in held}
    cash = written(draw, 0, 2_000_000, 4) if draw(st.integers(0, 9)) else ZERO
    return RebalanceProblem(tuple(positions), holdings, cash, prices)


@st.composite
def binding_problems(draw: st.DrawFn) -> RebalanceProblem:
    """New portfolios whose targets sum to 0.95, each just above half a share: rounding every
    one up overspends; prices and cash written with different numbers of decimals."""
    n = draw(st.integers(2, 12))
    cash = written(draw, 1_000, 200_000, 3)
    cuts = sorted(draw(st.lists(st.integers(1, 189), min_size=n - 1, max_size=n - 1, unique=True)))
    positions, prices = [], {}
    places = draw(st.integers(0, 4))
    for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, 190], strict=True)):
        target = D(b - a) * D("0.005")
        low = draw(st.sampled_from([target, (target * 6 / 10).quantize(D("0.0001"))]))
        positions.append(Position(security_id(i), target, low, target))
        shares = draw(st.integers(0, 3)) + Fraction(draw(st.integers(51, 97)), 100)
        price = Fraction(cash) * Fraction(target) / shares
        prices[security_id(i)] = max(D(round(price * 10**places)).scaleb(-places), D(1))
    return RebalanceProblem(tuple(positions), {}, cash, prices)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(st.one_of(problems(), binding_problems()))
def test_every_figure_matches_decimal_arithmetic_on_the_input(problem: RebalanceProblem) -> None:
    try:
        result = solve(problem)
    except Infeasible:
        event("infeasible")
        return
    event(result.method)
    reference(problem, result)


def binding(places: int) -> RebalanceProblem:
    """Nineteen targets of 50 at price 60, with cash 1000: rounding every one up overspends."""
    ids = [security_id(i) for i in range(19)]
    positions = tuple(Position(s, D("0.05"), D("0.05"), D("0.05")) for s in ids)
    price = D(60).quantize(D(1).scaleb(-places))
    return RebalanceProblem(positions, {}, D("1000"), dict.fromkeys(ids, price))


def test_orders_do_not_depend_on_how_many_decimals_the_prices_are_written_with() -> None:
    results = [solve(binding(places)) for places in (0, 2, 5)]
    assert {r.method for r in results} == {"search"}
    assert results[0].quantities == results[1].quantities == results[2].quantities
    assert results[0].objective == results[1].objective == results[2].objective


@pytest.mark.parametrize(
    ("target", "low", "high"),
    [
        ("0.123456", "0.05", "0.05"),  # a target finer than 4 decimals
        ("0.12", "0.000001", "0.05"),  # a drift finer than 4 decimals, below the shortcut
        ("0.12", "0", "0"),  # a zero-width band
        ("0.499999", "0.1", "0.1"),  # actual 0.5000 above it: actual_drift -0.0000
    ],
)
def test_fine_targets_and_drifts_are_read_exactly(target: str, low: str, high: str) -> None:
    problem = RebalanceProblem(
        (Position(security_id(0), D(target), D(low), D(high)),),
        {},
        D("1000000"),
        {security_id(0): D("0.01")},
    )
    result = solve(problem)
    reference(problem, result)
    assert target != "0.499999" or str(result.drifts[0].actual_drift) == "-0.0000"


def test_cash_after_keeps_the_exponent_of_the_cash_and_the_traded_prices() -> None:
    problem = RebalanceProblem(
        (Position(security_id(0), D("0.5"), D("0.1"), D("0.1")),),
        {security_id(1): 3},
        D("1E+3"),
        {security_id(0): D("10.5"), security_id(1): D("2E+1")},
    )
    result = solve(problem)
    reference(problem, result)
    assert str(result.cash_after) == "535.0"


@pytest.mark.parametrize(
    ("quantity", "breaks"), [(399, True), (400, False), (600, False), (601, True)]
)
def test_the_exact_check_reads_every_band_even_when_the_drifts_are_wide(
    monkeypatch: pytest.MonkeyPatch, quantity: int, breaks: bool
) -> None:
    """Drifts of 0.1 pass the half-share shortcut, so only the amount's distance from the
    goal decides whether the band is read: 399 and 601 shares at 1 are outside [400, 600]."""
    monkeypatch.setattr(Term, "nearest", lambda self, runs: quantity)
    problem = RebalanceProblem(
        (Position(security_id(0), D("0.5"), D("0.1"), D("0.1")),),
        {},
        D("1000"),
        {security_id(0): D("1")},
    )
    if breaks:
        with pytest.raises(ServiceError, match="failed its exact check") as raised:
            solve(problem)
        assert "outside" in raised.value.details["violations"][0]
    else:
        assert solve(problem).quantities == {security_id(0): quantity}


def test_the_exact_check_refuses_an_answer_that_overspends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every single share lies in its band, but nineteen of them cost 1140 of 1000."""
    problem = binding(2)
    monkeypatch.setattr(
        rebalance,
        "_settle",
        lambda problem, book, *_: rebalance._Answer(book, [1] * len(book.ids), "search", "optimal"),
    )
    with pytest.raises(ServiceError, match="failed its exact check") as raised:
        solve(problem)
    assert raised.value.details["violations"] == ["the trades leave cash of -140.00, below 0"]
