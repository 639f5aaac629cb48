"""The engine benchmark's own judges: the policy checker, the policy mix, the order counts."""

import dataclasses
from decimal import Decimal
from fractions import Fraction

import pytest

from bench import engine
from bench.engine_problems import FEATURES, audit, policy_mix, realistic
from order_generation.domain.errors import Infeasible
from order_generation.domain.models import Position
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, solve

A, B, X = (c * 24 for c in "ABX")


def problem(policy: Policy, holdings: dict[str, int] | None = None) -> RebalanceProblem:
    """MV = 10,000; A and B 40% each with 10% drift either way; X held outside the model;
    by default A held at 40 (on target) and X at 10, B not held."""
    positions = (
        Position(A, Decimal("0.4"), Decimal("0.1"), Decimal("0.1")),
        Position(B, Decimal("0.4"), Decimal("0.1"), Decimal("0.1")),
    )
    held = {A: 40, X: 10} if holdings is None else holdings
    prices = {A: Decimal(100), B: Decimal(50), X: Decimal(20)}
    cash = Decimal(10_000) - sum((q * prices[s] for s, q in held.items()), Decimal(0))
    return RebalanceProblem(positions, held, cash, prices, policy)


def test_a_rule_abiding_answer_passes_with_its_exact_objective() -> None:
    checked = audit(problem(Policy()), {A: 40, B: 80, X: 0}, kept=False)
    assert checked.broken == ()
    assert checked.objective == (Fraction(0), Fraction(0))
    assert checked.market_value == 10_000


@pytest.mark.parametrize(
    ("policy", "quantities", "broken"),
    [
        (Policy(), {A: 40, B: 80, X: 1}, "band"),  # X is outside the model: its band is [0, 0]
        (Policy(), {A: 40, B: 81}, "missing security"),
        (Policy(), {A: 40, B: 80, X: 0, "Z" * 24: 0}, "unknown security"),
        (Policy(), {A: -1, B: 80, X: 0}, "not a whole number >= 0"),
        (Policy(min_cash=Decimal(2_500)), {A: 40, B: 80, X: 0}, "cash reserve"),
        (Policy(withdraw=Decimal(2_001)), {A: 40, B: 80, X: 0}, "cash reserve"),
        (Policy(min_cash_fraction=Decimal("0.3")), {A: 40, B: 80, X: 0}, "cash reserve"),
        (Policy(no_sell=frozenset({A})), {A: 35, B: 80, X: 0}, "restriction: sold"),
        (Policy(hold=frozenset({X})), {A: 40, B: 80, X: 0}, "restriction: sold"),
        (Policy(mode="sell_only"), {A: 40, B: 80, X: 0}, "restriction: bought"),
        (Policy(mode="buy_only"), {A: 40, B: 80, X: 0}, "restriction: sold"),
        (Policy(no_buy=frozenset({B})), {A: 40, B: 80, X: 0}, "restriction: bought"),
        (Policy(round_lot=10), {A: 40, B: 85, X: 0}, "lot"),
        (Policy(round_lots={B: 30}), {A: 40, B: 80, X: 0}, "lot"),
        (Policy(min_trade_quantity=5), {A: 43, B: 80, X: 0}, "minimum trade"),
        (Policy(min_trade_value=Decimal(400)), {A: 43, B: 80, X: 0}, "minimum trade"),
        (Policy(mode="bands"), {A: 41, B: 80, X: 0}, "bands: traded in band"),
    ],
)
def test_the_checker_flags_each_broken_rule(
    policy: Policy, quantities: dict[str, int], broken: str
) -> None:
    assert broken in audit(problem(policy), quantities, kept=policy.mode == "bands").broken


def test_closing_a_position_is_never_too_small_and_best_effort_counts_what_is_outside() -> None:
    policy = Policy(round_lot=100, min_trade_value=Decimal(10**6), bands="best_effort")
    checked = audit(problem(policy), {A: 40, B: 0, X: 0}, kept=False)
    assert checked.broken == ()
    assert checked.outside == 3_000  # B's floor is 10,000 x 0.3
    assert checked.deviation == 4_000


def test_a_broken_engine_answer_is_reported() -> None:
    rebalance = problem(Policy(round_lot=10))
    result = solve(rebalance)
    assert engine.engine_problems_found(rebalance, result) == []
    moved = dict(result.quantities)
    moved[B] += 1
    wrong = dataclasses.replace(result, quantities=moved)
    assert sorted(engine.engine_problems_found(rebalance, wrong)) == ["PD misreported", "lot"]


def test_the_mix_draws_every_setting_alone_and_combined() -> None:
    mixed = policy_mix(7, 10, 60)
    labels = [label.split("+") for label, _ in mixed]
    assert {f for label in labels for f in label} == set(FEATURES)
    assert any(len(label) == 1 for label in labels)
    assert any(len(label) > 1 for label in labels)
    assert [label for label, _ in policy_mix(7, 10, 60)] == [label for label, _ in mixed]


def test_the_policy_mix_finds_no_engine_violation_and_no_better_milp_answer() -> None:
    tally = engine.PolicyTally(10)
    for i, (label, rebalance) in enumerate(policy_mix(7, 10, 16)):
        engine.judge_policy(tally, i, label, rebalance, with_milp=i < 8)
    assert len(tally.engine_seconds) == 16
    assert len(tally.milp_seconds) == 8
    assert tally.compared > 0
    assert tally.engine_infeasible + sum(tally.methods.values()) == 16
    assert (tally.violated, tally.milp_better, tally.only_engine_infeasible) == (0, 0, 0)
    assert tally.findings == []


def test_a_beaten_engine_answer_counts_against_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    rebalance = problem(Policy())  # its optimum holds A at 40 and B at 80: PD 0
    optimum = solve(rebalance)
    worse = dataclasses.replace(optimum, quantities={A: 41, B: 80, X: 0}, objective=Decimal(100))
    monkeypatch.setattr(engine, "solve", lambda *_, **__: worse)
    tally = engine.PolicyTally(3)
    engine.judge_policy(tally, 0, "plain", rebalance, with_milp=True)
    assert (tally.compared, tally.milp_better) == (1, 1)
    assert tally.findings == ["#0 plain: the MILP's answer is better"]


def test_an_infeasible_verdict_the_milp_answers_counts_against_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise Infeasible("no", {})

    monkeypatch.setattr(engine, "solve", refuse)
    tally = engine.PolicyTally(3)
    engine.judge_policy(tally, 0, "plain", problem(Policy()), with_milp=True)
    assert (tally.engine_infeasible, tally.only_engine_infeasible) == (1, 1)


def test_orders_under_bands_and_full_are_counted_from_the_solves() -> None:
    runs, _ = engine.run_engine(realistic(7, 10, 8))
    orders = engine.count_orders(runs)
    banded = [solve(dataclasses.replace(p, policy=Policy(mode="bands"))) for p, _, _ in runs]
    assert orders.full == [len(r.trades) for _, r, _ in runs]
    assert orders.bands == [len(r.trades) for r in banded]
    assert orders.fell_back == sum(r.mode == "full" for r in banded)
    assert sum(orders.bands) < sum(orders.full)  # near portfolios keep what lies in band


def test_a_portfolio_inside_every_band_needs_no_order_under_bands() -> None:
    near = problem(Policy(), holdings={A: 40, B: 80})
    runs = [(near, solve(near), 0.0)]
    orders = engine.count_orders(runs)
    assert (orders.full, orders.bands, orders.fell_back) == ([0], [0], 0)
    moved = problem(Policy(), holdings={A: 37, B: 80})  # A 3,700: inside [3,000, 5,000]
    orders = engine.count_orders([(moved, solve(moved), 0.0)])
    assert (orders.full, orders.bands) == ([1], [0])
    kept = solve(dataclasses.replace(moved, policy=Policy(mode="bands")))
    assert (kept.mode, kept.objective) == ("bands", Decimal(300))
