"""Rebuilding a problem from a stored result: on random problems with every policy field, the
stored rows give back the problem that was solved, and solving it again gives the same orders."""

from hypothesis import HealthCheck, assume, given, settings

from order_generation.domain.errors import ServiceError
from order_generation.domain.policy import DEFAULT_POLICY, ZERO
from order_generation.domain.rebalance import RebalanceProblem, Trade, solve
from order_generation.service.replay import (
    OrderDifference,
    Recorded,
    order_differences,
    problem_of,
    replay_portfolio,
)
from tests.domain.test_policy_properties import small_problems

PORTFOLIO = "PORT00000000000000000001"
SETTINGS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


# Generous, so that the search proves its optimum however loaded the machine: an answer the
# MILP fallback took over ("feasible") depends on the time left and may replay differently.
TIME_LIMIT = 120.0


def recorded(problem: RebalanceProblem) -> Recorded:
    try:
        result = solve(problem, time_limit=TIME_LIMIT)
    except ServiceError:
        assume(False)
        raise
    assume(result.status == "optimal")
    return Recorded(PORTFOLIO, result.drifts, result.cash_before, result.policy, result.trades)


@SETTINGS
@given(small_problems())
def test_the_stored_rows_give_back_the_problem_solved(problem: RebalanceProblem) -> None:
    rebuilt = problem_of(recorded(problem))
    assert rebuilt.positions == problem.positions
    assert rebuilt.cash == problem.cash
    assert rebuilt.policy == problem.policy
    held = dict(problem.holdings)
    assert {s: q for s, q in rebuilt.holdings.items() if q or s in held} == held
    assert set(rebuilt.prices) == {p.security_id for p in problem.positions} | set(held)
    assert all(rebuilt.prices[s] == problem.prices[s] for s in rebuilt.prices)


@SETTINGS
@given(small_problems())
def test_solving_the_stored_rows_again_gives_the_same_orders(problem: RebalanceProblem) -> None:
    replay = replay_portfolio(recorded(problem), time_limit=TIME_LIMIT)
    assert replay.error is None
    assert replay.differences == ()
    assert replay.same


def test_differences_pair_the_stored_and_replayed_order_of_each_security() -> None:
    stored = Trade("A" * 24, "BUY", 10), Trade("B" * 24, "SELL", 5), Trade("C" * 24, "BUY", 1)
    again = Trade("A" * 24, "BUY", 10), Trade("B" * 24, "SELL", 4), Trade("D" * 24, "SELL", 2)
    row = Recorded(PORTFOLIO, (), ZERO, DEFAULT_POLICY, stored)
    assert order_differences(row, again) == (
        OrderDifference("B" * 24, stored[1], again[1]),
        OrderDifference("C" * 24, stored[2], None),
        OrderDifference("D" * 24, None, again[2]),
    )
