from decimal import Decimal

import highspy
import pytest

from order_generation.domain import milp
from order_generation.domain.errors import OptimizationFailed

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
    solver = milp._solver(5.0)
    assert solver.getOptionValue("mip_rel_gap") == (highspy.HighsStatus.kOk, 0.0)
    assert solver.getOptionValue("mip_abs_gap") == (highspy.HighsStatus.kOk, 0.0)
    assert solver.getOptionValue("time_limit") == (highspy.HighsStatus.kOk, 5.0)
