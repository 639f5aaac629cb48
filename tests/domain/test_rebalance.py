from decimal import Decimal

import pytest

from order_generation.domain import rebalance
from order_generation.domain.drifts import Drift
from order_generation.domain.errors import Infeasible, InvalidInput, ServiceError, SolverTimeout
from order_generation.domain.models import Position
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, Trade, solve
from order_generation.domain.terms import Term

D = Decimal


def sid(name: str) -> str:
    return name.ljust(24, "0")


A, B, X, Y, Z = (sid(c) for c in "ABXYZ")
NINETEEN = [f"S{i:023d}" for i in range(19)]


def position(security_id: str, target: str, low: str = "0.1", high: str = "0.1") -> Position:
    return Position(security_id, D(target), D(low), D(high))


def problem(
    positions: list[Position],
    prices: dict[str, str],
    cash: str = "0",
    holdings: dict[str, int] | None = None,
) -> RebalanceProblem:
    return RebalanceProblem(
        positions=tuple(positions),
        holdings=holdings or {},
        cash=D(cash),
        prices={k: D(v) for k, v in prices.items()},
    )


def test_all_cash_new_portfolio_buys_every_target_exactly() -> None:
    result = solve(
        problem(
            [position(A, "0.5"), position(B, "0.45", "0.05", "0.05")],
            {A: "100", B: "30"},
            cash="10000",
        )
    )
    assert result.quantities == {A: 50, B: 150}
    assert result.trades == (Trade(A, "BUY", 50), Trade(B, "BUY", 150))
    assert (result.market_value, result.cash_before, result.cash_after) == (
        D(10000),
        D(10000),
        D(500),
    )
    assert result.objective == 0
    assert result.status == "optimal"
    assert result.drifts[0] == Drift(
        A, D("100"), 0, 50, D("0.5"), D("0.1"), D("0.1"), D("0.5000"), D("0.0000")
    )


def test_market_value_zero_gives_no_trades() -> None:
    result = solve(problem([position(A, "0.5")], {A: "10"}))
    assert result.quantities == {A: 0}
    assert result.trades == ()
    assert (result.market_value, result.cash_after, result.objective) == (D(0), D(0), D(0))
    assert result.drifts[0].actual == D("0.0000")
    assert result.drifts[0].actual_drift == D("1.0000")


def test_a_security_too_expensive_for_its_band_is_left_out_when_zero_is_allowed() -> None:
    result = solve(problem([position(A, "0.1", "0.1", "0.05")], {A: "5000"}, cash="10000"))
    assert result.quantities == {A: 0}
    assert result.cash_after == 10000


def test_a_security_too_expensive_for_its_band_is_infeasible_and_named() -> None:
    with pytest.raises(Infeasible) as raised:
        solve(problem([position(A, "0.1", "0.05", "0.05")], {A: "5000"}, cash="10000"))
    assert A in raised.value.message
    assert "cannot be held within its band [500.00, 1500.00] at price 5000" in (
        raised.value.message
    )
    assert raised.value.details["solver_status"] == "infeasible"
    assert raised.value.status == 422


def test_targets_summing_to_exactly_095_keep_five_percent_cash() -> None:
    ids = NINETEEN
    result = solve(problem([position(s, "0.05") for s in ids], dict.fromkeys(ids, "50"), "100000"))
    assert set(result.quantities.values()) == {100}
    assert result.cash_after == 5000
    assert result.objective == 0


def overspending_nineteen() -> RebalanceProblem:
    """Each target is 50 at price 60: one share is nearest, but 19 shares cost 1140 > 1000.
    Holding k single shares costs 60k <= 1000 and PD = 10k + 50(19 - k): best k = 16."""
    positions = [position(s, "0.05", "0.05", "0.05") for s in NINETEEN]
    return problem(positions, dict.fromkeys(NINETEEN, "60"), "1000")


def test_targets_summing_to_095_when_rounding_up_would_overspend() -> None:
    result = solve(overspending_nineteen())
    assert sum(result.quantities.values()) == 16
    assert result.objective == 310
    assert result.cash_after == 40
    assert result.method == "search"


def test_zero_width_band_is_met_exactly_when_shares_divide_the_target() -> None:
    result = solve(problem([position(A, "0.5", "0", "0")], {A: "50"}, cash="1000"))
    assert result.quantities == {A: 10}
    assert result.drifts[0].actual_drift == D("0.0000")


def test_zero_width_band_that_no_whole_share_meets_is_infeasible() -> None:
    with pytest.raises(Infeasible, match=A):
        solve(problem([position(A, "0.5", "0", "0")], {A: "30"}, cash="1000"))


def test_holdings_the_model_lacks_are_sold_and_listed_after_the_model_by_id() -> None:
    result = solve(
        problem(
            [position(A, "0.5")],
            {A: "100", X: "20", Y: "1", Z: "1"},
            cash="798",
            holdings={Z: 1, X: 10, Y: 1},
        )
    )
    assert result.market_value == 1000
    assert list(result.quantities) == [A, X, Y, Z]
    assert result.quantities == {A: 5, X: 0, Y: 0, Z: 0}
    assert result.trades == (
        Trade(A, "BUY", 5),
        Trade(X, "SELL", 10),
        Trade(Y, "SELL", 1),
        Trade(Z, "SELL", 1),
    )
    extra = result.drifts[1]
    assert (extra.target, extra.low_drift, extra.high_drift) == (D(0), D(0), D(0))
    assert (extra.actual, extra.actual_drift) == (D("0.0000"), D("0.0000"))


def test_a_short_position_is_bought_back_and_a_tie_takes_the_lower_quantity() -> None:
    # MV = 2000 - 500 = 1500; the target 750 is 7.5 shares at 100: 7 and 8 tie, 7 wins.
    result = solve(problem([position(A, "0.5")], {A: "100"}, cash="2000", holdings={A: -5}))
    assert result.quantities == {A: 7}
    assert result.trades == (Trade(A, "BUY", 12),)
    assert result.objective == 50
    assert result.cash_after == 800


def test_no_trade_when_a_holding_is_already_on_target() -> None:
    result = solve(problem([position(A, "0.5")], {A: "100"}, cash="500", holdings={A: 5}))
    assert result.trades == ()
    assert result.drifts[0].original_quantity == result.drifts[0].adjusted_quantity == 5


def test_negative_market_value_is_infeasible() -> None:
    with pytest.raises(Infeasible, match="negative"):
        solve(problem([position(A, "0.5")], {A: "100"}, cash="1000", holdings={A: -50}))


def test_lower_bounds_that_cost_more_than_the_market_value_are_infeasible() -> None:
    positions = [position(A, "0.475", "0.005", "0.3"), position(B, "0.475", "0.005", "0.3")]
    with pytest.raises(Infeasible) as raised:
        solve(problem(positions, {A: "30", B: "30"}, cash="100"))
    assert "the lower bounds alone cost 120, more than the market value 100" in (
        raised.value.message
    )


@pytest.mark.parametrize(
    ("price", "actual", "drift"),
    [("1234.5", "0.1234", "-0.0283"), ("1235.5", "0.1236", "-0.0300")],
)
def test_actual_and_actual_drift_round_half_even_to_four_decimals(
    price: str, actual: str, drift: str
) -> None:
    result = solve(problem([position(A, "0.12")], {A: price}, cash="10000"))
    row = result.drifts[0]
    assert row.adjusted_quantity == 1
    assert (row.actual, row.actual_drift) == (D(actual), D(drift))


def test_the_same_input_gives_the_same_orders_whatever_the_holdings_order() -> None:
    ids = NINETEEN
    positions = [position(s, "0.05", "0.05", "0.05") for s in ids]
    prices = dict.fromkeys(ids, "60")
    forward = {s: i % 2 for i, s in enumerate(ids)}
    backward = dict(reversed(forward.items()))
    first = solve(problem(positions, prices, "990", forward))
    second = solve(problem(positions, prices, "990", backward))
    assert (first.quantities, first.trades, first.drifts) == (
        second.quantities,
        second.trades,
        second.drifts,
    )


def needs_a_search() -> RebalanceProblem:
    """Six targets of 150.45 at prices 60, 33 and 23 (twice each) within cash 1003: the greedy
    fill of the knapsack is not provably optimal, so the search has to branch."""
    ids = NINETEEN[:6]
    prices = dict(zip(ids, ["60", "33", "23"] * 2, strict=True))
    return problem([position(s, "0.15", "0.15", "0.05") for s in ids], prices, "1003")


def test_a_search_past_its_time_limit_raises_a_timeout() -> None:
    assert solve(needs_a_search()).objective == D("110.20")
    with pytest.raises(SolverTimeout) as raised:
        solve(needs_a_search(), time_limit=0)
    assert raised.value.details["solver_status"] == "time_limit"
    assert D(raised.value.details["best_objective_found"]) >= D("110.20")
    assert raised.value.status == 422


def test_the_milp_fallback_reaches_the_same_optimum_and_is_not_called_proven(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebalance, "NODE_LIMIT", 0)
    result = solve(needs_a_search())
    assert result.method == "milp"
    assert result.status == "feasible"
    assert result.objective == D("110.20")


def test_an_answer_that_breaks_a_band_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Term, "nearest", lambda self, runs: 11)
    with pytest.raises(ServiceError, match="failed its exact check") as raised:
        solve(problem([position(A, "0.5", "0", "0")], {A: "50"}, cash="1000"))
    assert raised.value.status == 500
    assert "outside" in raised.value.details["violations"][0]


def test_duplicate_positions_are_invalid() -> None:
    with pytest.raises(InvalidInput, match="appears twice"):
        problem([position(A, "0.1"), position(A, "0.2")], {A: "1"})


@pytest.mark.parametrize("price", [None, "0", "-1", "NaN", "Infinity"])
def test_every_security_needs_a_positive_price(price: str | None) -> None:
    prices = {A: "1"} if price is None else {A: "1", X: price}
    with pytest.raises(InvalidInput) as raised:
        problem([position(A, "0.1")], prices, holdings={X: 1})
    assert raised.value.field == f"prices.{X}"


def test_holdings_must_be_whole_numbers() -> None:
    with pytest.raises(InvalidInput, match="whole number"):
        RebalanceProblem((), {A: 1.5}, D(0), {A: D(1)})  # type: ignore[dict-item]


def test_cash_must_be_finite() -> None:
    with pytest.raises(InvalidInput, match="cash"):
        problem([position(A, "0.1")], {A: "1"}, cash="NaN")


def test_a_model_read_once_serves_policies_that_need_finer_units() -> None:
    """Positions shared by many portfolios are read into integers once; a reserve fraction
    with more decimals than the weights must still be exact, and reading them again must not
    change the answer."""
    positions = (position(A, "0.5", "0.5", "0.1"), position(B, "0.45", "0.45", "0.05"))
    prices = {A: D("10"), B: D("7")}
    answers = []
    for fraction in ("0.1", "0.123456789", "0.1"):
        policy = Policy(min_cash_fraction=D(fraction))
        shared = solve(RebalanceProblem(positions, {}, D("10000"), prices, policy))
        fresh = solve(RebalanceProblem((*positions,), {}, D("10000"), prices, policy))
        assert shared.quantities == fresh.quantities
        assert shared.cash_after >= D("10000") * D(fraction)
        answers.append(shared.quantities)
    assert answers[0] == answers[2] != answers[1]
