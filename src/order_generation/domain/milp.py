"""The rebalance as a general MILP, solved by HiGHS: the reference and the fallback.

    minimise    Σ_i d_i
    subject to  d_i ≥ T_i - P_i·u_i,   d_i ≥ P_i·u_i - T_i,   Σ_i P_i·u_i ≤ B,
                lo_i ≤ u_i ≤ hi_i,  u_i integer,  d_i ≥ 0.

HiGHS works in floating point, so its answer is only a candidate: callers round the
quantities and check them exactly. The relative and absolute MIP gaps are set to 0 (the
default relative gap, 1e-4, stops short of the optimum).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import highspy
import numpy as np

from order_generation.domain.errors import OptimizationFailed, SolverTimeout


@dataclass(frozen=True, slots=True)
class MilpSolution:
    quantities: tuple[int, ...]
    objective: float
    status: str


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
    solver = _solver(time_limit)
    price = np.array([float(p) for p in prices])
    _add_columns(solver, lows, highs)
    _add_rows(solver, price, np.array([float(t) for t in targets]), float(budget))
    if start is not None:
        solver.setSolution(n, np.arange(n, dtype=np.int32), np.array(start, dtype=np.float64))
    solver.run()
    status = solver.getModelStatus()
    name = solver.modelStatusToString(status)
    if status == highspy.HighsModelStatus.kTimeLimit:
        raise SolverTimeout(
            f"the MILP solver passed its time limit of {time_limit:.1f} s",
            {"solver_status": name},
        )
    if status != highspy.HighsModelStatus.kOptimal:
        raise OptimizationFailed(
            f"the MILP solver found no optimum: {name}", {"solver_status": name}
        )
    values = solver.getSolution().col_value[:n]
    quantities = tuple(round(v) for v in values)
    return MilpSolution(quantities, solver.getInfo().objective_function_value, name)


def _solver(time_limit: float) -> highspy.Highs:
    solver = highspy.Highs()  # type: ignore[no-untyped-call]
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("mip_rel_gap", 0.0)
    solver.setOptionValue("mip_abs_gap", 0.0)
    solver.setOptionValue("time_limit", max(float(time_limit), 0.001))
    return solver


def _add_columns(solver: highspy.Highs, lows: Sequence[int], highs: Sequence[int]) -> None:
    n = len(lows)
    inf = highspy.kHighsInf
    no_entries = np.zeros(0, dtype=np.int32)
    lower = np.concatenate([np.array(lows, dtype=np.float64), np.zeros(n)])
    upper = np.concatenate([np.array(highs, dtype=np.float64), np.full(n, inf)])
    costs = np.concatenate([np.zeros(n), np.ones(n)])
    starts = np.zeros(2 * n, dtype=np.int32)
    solver.addCols(2 * n, costs, lower, upper, 0, starts, no_entries, np.zeros(0))
    solver.changeColsIntegrality(
        n,
        np.arange(n, dtype=np.int32),
        np.full(n, int(highspy.HighsVarType.kInteger), dtype=np.uint8),
    )


def _add_rows(solver: highspy.Highs, price: np.ndarray, target: np.ndarray, budget: float) -> None:
    """Rows 2i and 2i+1 bound d_i from both sides; the last row is the budget."""
    n = len(price)
    inf = highspy.kHighsInf
    units = np.arange(n, dtype=np.int32)
    deviations = units + n
    indices = np.column_stack([deviations, units, deviations, units]).ravel()
    values = np.column_stack([np.ones(n), price, np.ones(n), -price]).ravel()
    lower = np.column_stack([target, -target]).ravel()
    upper = np.full(2 * n, inf)
    starts = np.arange(0, 4 * n, 2, dtype=np.int32)
    solver.addRows(2 * n, lower, upper, 4 * n, starts, indices.astype(np.int32), values)
    solver.addRows(
        1, np.array([-inf]), np.array([budget]), n, np.zeros(1, dtype=np.int32), units, price
    )
