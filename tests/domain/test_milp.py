import random
import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import highspy
import pytest

from order_generation.domain import highs, milp
from order_generation.domain.errors import Infeasible, OptimizationFailed, SolverTimeout
from order_generation.domain.models import Position
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, solve

D = Decimal


def test_finds_the_integer_optimum_when_cash_binds() -> None:
    # Three targets of 50 at price 60: one share each is nearest, but only two fit in 150.
    answer = milp.minimise_deviation(
        [D(60)] * 3, [D(50)] * 3, [0] * 3, [1] * 3, D(150), time_limit=10
    )
    assert sorted(answer.quantities) == [0, 1, 1]
    assert answer.objective == pytest.approx(70)
    assert answer.status == "Optimal"


def test_keeps_quantities_inside_their_integer_bounds() -> None:
    answer = milp.minimise_deviation([D(10)], [D(1000)], [3], [5], D(10_000), time_limit=10)
    assert answer.quantities == (5,)


def test_an_empty_problem_has_nothing_to_solve() -> None:
    assert milp.minimise_deviation([], [], [], [], D(0), time_limit=1).quantities == ()


def test_infeasible_bounds_are_reported_with_the_solver_status() -> None:
    with pytest.raises(OptimizationFailed) as raised:
        milp.minimise_deviation([D(60)], [D(50)], [2], [3], D(100), time_limit=10)
    assert raised.value.details["solver_status"] == "Infeasible"


def test_the_gap_is_zero_so_the_answer_is_exact() -> None:
    solver = highs.new_solver(5.0)
    assert solver.getOptionValue("mip_rel_gap") == (highspy.HighsStatus.kOk, 0.0)
    assert solver.getOptionValue("mip_abs_gap") == (highspy.HighsStatus.kOk, 0.0)
    assert solver.getOptionValue("time_limit") == (highspy.HighsStatus.kOk, 5.0)


# --- the rebalance with a policy -----------------------------------------------------------

A = "A" * 24
B = "B" * 24
X = "X" * 24


def problem(
    holdings: dict[str, int] | None = None, cash: str = "1000", **policy: Any
) -> RebalanceProblem:
    """A: target 0.5, drifts 0.1, price 10; B: target 0.45, drifts 0.01, price 10 (only when
    `with_b`); X: held outside the model, price 20."""
    with_b = policy.pop("with_b", False)
    positions = [Position(A, D("0.5"), D("0.1"), D("0.1"))]
    if with_b:
        positions.append(Position(B, D("0.45"), D("0.01"), D("0.01")))
    prices = {A: D(10), B: D(10), X: D(20)}
    return RebalanceProblem(
        tuple(positions), holdings or {}, D(cash), prices, policy=Policy(**policy)
    )


def solved(rebalance: RebalanceProblem) -> milp.PolicyMilpSolution:
    return milp.solve_policy_milp(rebalance, time_limit=10).require()


@pytest.mark.parametrize(
    ("holdings", "cash", "policy", "quantity", "deviation"),
    [
        ({}, "1000", {}, 50, 0),
        ({}, "1000", {"round_lot": 7}, 49, 10),
        ({}, "1000", {"round_lot": 7, "round_lots": {A: 1}}, 50, 0),
        ({}, "1000", {"round_lots": {A: 7}}, 49, 10),
        ({}, "1000", {"min_trade_quantity": 60}, 60, 100),
        ({}, "1000", {"min_trade_value": D(560)}, 56, 60),
        ({}, "1000", {"withdraw": D(200)}, 40, 0),
        ({}, "1000", {"min_cash": D(600)}, 40, 100),
        ({}, "1000", {"min_cash_fraction": D("0.55")}, 45, 50),
        ({A: 80}, "200", {"mode": "sell_only"}, 50, 0),
        ({A: 55}, "450", {"mode": "bands"}, 55, 50),
        ({A: 55}, "450", {"hold": frozenset({A})}, 55, 50),
        ({A: 20}, "800", {"no_sell": frozenset({A})}, 50, 0),
        ({A: 80}, "200", {"no_buy": frozenset({A})}, 50, 0),
        ({A: 20}, "800", {"round_lot": 7}, 48, 20),
        ({A: 20}, "800", {"min_trade_value": D(400)}, 60, 100),
    ],
)
def test_each_rule_shapes_the_optimum(
    holdings: dict[str, int], cash: str, policy: dict[str, Any], quantity: int, deviation: int
) -> None:
    answer = solved(problem(holdings, cash, **policy))
    assert answer.quantities == {A: quantity}
    assert answer.deviation == deviation
    assert answer.outside == 0


def test_closing_a_position_is_allowed_whatever_the_lot() -> None:
    answer = solved(problem({A: 50, X: 3}, "300", round_lot=10, min_trade_value=D(1000)))
    assert answer.quantities == {A: 50, X: 0}


@pytest.mark.parametrize(
    ("holdings", "cash", "policy"),
    [
        ({}, "1000", {"min_trade_value": D(700)}),
        ({}, "1000", {"min_cash_fraction": D("0.7")}),
        ({}, "1000", {"withdraw": D("1000.01")}),
        ({A: 80}, "200", {"mode": "buy_only"}),
        ({A: 80}, "200", {"hold": frozenset({A})}),
        ({A: 80}, "200", {"no_sell": frozenset({A})}),
        ({A: 20}, "800", {"no_buy": frozenset({A})}),
        ({A: 20}, "800", {"mode": "sell_only"}),
        ({A: 20}, "800", {"round_lot": 100}),
    ],
)
def test_strict_bands_with_no_allowed_quantity_are_infeasible(
    holdings: dict[str, int], cash: str, policy: dict[str, Any]
) -> None:
    answer = milp.solve_policy_milp(problem(holdings, cash, **policy), time_limit=10)
    assert answer.status == "infeasible"
    assert answer.quantities is None
    with pytest.raises(Infeasible):
        answer.require()


def test_best_effort_minimises_the_amount_outside_then_the_deviation() -> None:
    # Trades of at least 700 leave 0 (400 short of the floor) or 70..100 shares (100+ over).
    answer = solved(problem({}, "1000", min_trade_value=D(700), bands="best_effort"))
    assert answer.quantities == {A: 70}
    assert (answer.outside, answer.deviation) == (Fraction(100), Fraction(200))


def test_best_effort_keeps_a_restricted_security_outside_its_band() -> None:
    answer = solved(problem({A: 80, X: 7}, "60", no_sell=frozenset({X}), bands="best_effort"))
    assert answer.quantities == {A: 50, X: 7}
    assert answer.outside == 140


S7 = "SEC000000000000000000007"
S9 = "SEC000000000000000000009"


def exact_objective(rebalance: RebalanceProblem, quantities: dict[str, int]) -> tuple[Any, Any]:
    """(amount outside the bands, PD) of `quantities`, in Fractions (no holdings, no withdraw)."""
    value = Fraction(rebalance.cash)
    outside = deviation = Fraction(0)
    for p in rebalance.positions:
        amount = Fraction(rebalance.prices[p.security_id]) * quantities[p.security_id]
        band_floor = value * max(Fraction(p.target) - Fraction(p.low_drift), Fraction(0))
        band_ceiling = value * (Fraction(p.target) + Fraction(p.high_drift))
        outside += max(Fraction(0), band_floor - amount, amount - band_ceiling)
        deviation += abs(value * Fraction(p.target) - amount)
    return outside, deviation


@pytest.mark.parametrize(
    ("cash", "prices", "policy"),
    [
        ("16036295", ("46.22", "212.13"), {}),
        ("16036295", ("46.2217", "212.133"), {}),
        ("160362950.37", ("46.22", "212.13"), {"round_lot": 10}),
        ("160362950.37", ("46.2217", "212.133"), {}),
        ("987654321.09", ("46.22", "212.13"), {}),
    ],
)
def test_best_effort_at_large_values_finds_the_engines_optimum(
    cash: str, prices: tuple[str, str], policy: dict[str, Any]
) -> None:
    # Rows in units of V let HiGHS's absolute tolerance (1e-6) stand for 1e-6·V: presolve
    # kept o_i = (F_i - p_i·u_i)/V < 0, phase 1's optimum came out below 0 and the cap built
    # from it left phase 2 infeasible (the first four), or the answer was dollars short.
    positions = (
        Position(S7, D("0.015"), D("0.01"), D("0.05")),
        Position(S9, D("0.035"), D("0.02"), D("0.03")),
    )
    rebalance = RebalanceProblem(
        positions,
        {},
        D(cash),
        dict(zip((S7, S9), map(D, prices), strict=True)),
        policy=Policy(min_trade_value=D(2000), bands="best_effort", **policy),
    )
    result = solve(rebalance)
    expected = exact_objective(rebalance, dict(result.quantities))
    assert expected[0] == sum((Fraction(b.outside) for b in result.breaches), Fraction(0))
    answer = milp.solve_policy_milp(rebalance, time_limit=10)
    assert answer.status == "optimal", answer
    assert (answer.outside, answer.deviation) == expected


def test_mode_bands_keeps_in_band_securities_and_trades_the_others() -> None:
    answer = solved(problem({A: 55, X: 2}, "410", mode="bands", with_b=True))
    assert answer.mode == "bands"
    assert answer.quantities == {A: 55, B: 45, X: 0}


def test_mode_bands_falls_back_to_full_when_keeping_leaves_no_answer() -> None:
    # Keeping A at 60 leaves 400 for B, whose band starts at 440.
    answer = solved(problem({A: 60}, "400", mode="bands", with_b=True))
    assert answer.mode == "full"
    assert answer.quantities == {A: 50, B: 45}


def test_an_empty_portfolio_with_no_model_has_nothing_to_do() -> None:
    answer = solved(RebalanceProblem((), {}, D(100), {}))
    assert answer.quantities == {}
    assert (answer.deviation, answer.status) == (Fraction(0), "optimal")


def test_statuses_map_to_the_service_errors() -> None:
    def solution(status: Any) -> milp.PolicyMilpSolution:
        return milp.PolicyMilpSolution(None, status, "full", "HiGHS says so")

    with pytest.raises(SolverTimeout) as timeout:
        solution("time_limit").require()
    assert timeout.value.details == {"solver_status": "HiGHS says so"}
    with pytest.raises(Infeasible):
        solution("infeasible").require()
    with pytest.raises(OptimizationFailed) as failed:
        solution("failed").require()
    assert type(failed.value) is OptimizationFailed


# --- HiGHS never outlasts its time limit ------------------------------------------------------


def overrunning_model() -> highs.Milp:
    """4y - z = 0, 8x + z = -19 in free integers (ERGO-Code/HiGHS#2226): with presolve off,
    HiGHS 1.15.1 runs on, its interrupt checks coming ever further apart (here 29 s for a
    5 s time limit, and its callback interrupt 4.5 s late after 3 s)."""
    model = highs.Builder()
    inf = highspy.kHighsInf
    x, y, z = (model.column(-inf, inf, integer=True) for _ in range(3))
    model.row(0, 0, [(y, 4.0), (z, -1.0)])
    model.row(-19, -19, [(x, 8.0), (z, 1.0)])
    return model.build(options={"presolve": "off"})


def hard_problem() -> RebalanceProblem:
    """150 goals of 2.5-3.6 lots each, a budget that binds: HiGHS needs far more than 1 s."""
    rng = random.Random(1)
    positions = tuple(
        Position(f"S{i:023d}", D("0.005"), D("0.005"), D("0.005")) for i in range(150)
    )
    prices = {}
    for p in positions:
        lots = D(rng.randint(25, 35)) / 10 + D(rng.randint(1, 9)) / 100
        prices[p.security_id] = (D(5000) / (5 * lots)).quantize(D("0.01"))
    policy = Policy(bands="best_effort", round_lot=5, min_cash=D(260_000))
    return RebalanceProblem(positions, {}, D(1_000_000), prices, policy=policy)


def test_a_solve_that_overruns_is_stopped_at_its_deadline() -> None:
    milp.solve_policy_milp(problem(), time_limit=10)  # a worker is ready
    started = time.monotonic()
    outcome = highs.run(overrunning_model(), started + 1.5)
    took = time.monotonic() - started
    assert outcome.kind == "time_limit"
    assert took < 1.5 + highs.GRACE + 0.4
    # The killed worker is replaced: the next solve answers.
    assert solved(problem()).quantities == {A: 50}


def test_a_hard_problem_returns_a_time_limit_status_within_its_limit() -> None:
    milp.solve_policy_milp(problem(), time_limit=10)
    for limit in (0.05, 0.5):
        started = time.monotonic()
        answer = milp.solve_policy_milp(hard_problem(), time_limit=limit)
        assert time.monotonic() - started < limit + highs.GRACE + 0.4
        assert answer.status == "time_limit"
        with pytest.raises(SolverTimeout):
            answer.require()


def test_the_plain_problem_raises_a_timeout_past_its_limit() -> None:
    prices = [D(p) for p in hard_problem().prices.values()]
    with pytest.raises(SolverTimeout) as raised:
        milp.minimise_deviation(
            prices,
            [D(5000)] * len(prices),
            [0] * len(prices),
            [20] * len(prices),
            D(700_001),
            time_limit=0,
        )
    assert raised.value.details["solver_status"].startswith("time_limit")


def test_in_process_solves_give_the_same_answers() -> None:
    model = highs.Builder()
    u = model.column(0, 10, integer=True)
    d = model.column(0, highspy.kHighsInf)
    model.row(3.5, highspy.kHighsInf, [(d, 1.0), (u, 1.0)])
    model.row(-3.5, highspy.kHighsInf, [(d, 1.0), (u, -1.0)])
    built = model.build(cost={d: 1.0})
    here = highs.solve_here(built, time.monotonic() + 5)
    there = highs.run(built, time.monotonic() + 5)
    assert (here.kind, there.kind) == ("optimal", "optimal")
    assert here.objective == there.objective == pytest.approx(0.5)
    assert highs.solve_here(built, time.monotonic() - 1).kind == "time_limit"


def test_a_solve_error_is_solved_again_with_other_settings() -> None:
    # HiGHS 1.15.1 ends phase 1 of this one in "Solve error" (its optimum 1e-6 outside a row).
    ids = [f"P{i:023d}" for i in range(6)]
    bands = [("0.005", "0"), ("0.2", "0"), ("0.03", "0.02"), ("0.35", "0.01"), ("0.085", "0.02")]
    bands.append(("0.28", "0.02"))
    positions = tuple(
        Position(s, D(target), D(0), D(high)) for s, (target, high) in zip(ids, bands, strict=True)
    )
    prices = dict(zip(ids, map(D, ["1", "156.65", "1", "4.83", "58.14", "11.69"]), strict=True))
    policy = Policy(
        mode="buy_only", withdraw=D("0.2"), no_buy=frozenset({ids[0]}), bands="best_effort"
    )
    rebalance = RebalanceProblem(
        positions, {ids[2]: 23, ids[3]: 23}, D("330.24"), prices, policy=policy
    )
    answer = solved(rebalance)
    assert answer.quantities == dict(zip(ids, [0, 0, 23, 34, 1, 12], strict=True))
    assert (answer.outside, answer.deviation) == (Fraction(52797, 500), Fraction(675049, 5000))
