"""The two baselines the engine is measured against, each rebuilt for every portfolio.

(a) The original service's approach: a CVXPY continuous relaxation over the model's
    securities only, without the cash row, solved by CLARABEL, then rounded to the nearest
    integer; holdings outside the model are left as they are.
(b) A plain CVXPY MILP over the whole problem, solved by HiGHS with a relative gap of 0.
"""

import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import cvxpy
import numpy as np

from order_generation.domain.rebalance import RebalanceProblem

cp: Any = cvxpy  # its annotations are partial: no `multiply`, no `sum`, untyped `solve`
warnings.filterwarnings("ignore", module="cvxpy")


def _market_value(problem: RebalanceProblem) -> float:
    held = sum((q * problem.prices[s] for s, q in problem.holdings.items()), Decimal(0))
    return float(problem.cash + held)


def original_relaxation(problem: RebalanceProblem) -> Mapping[str, int] | None:
    """Baseline (a); None when CLARABEL returns no solution."""
    ids = [p.security_id for p in problem.positions]
    mv = _market_value(problem)
    price = np.array([float(problem.prices[s]) for s in ids])
    target = np.array([float(p.target) for p in problem.positions])
    low = np.array([float(p.low_drift) for p in problem.positions])
    high = np.array([float(p.high_drift) for p in problem.positions])
    quantity = cp.Variable(len(ids), nonneg=True)
    deviation = cp.Variable(len(ids))
    amount = cp.multiply(quantity, price)
    constraints = [
        amount >= mv * (target - low),
        amount <= mv * (target + high),
        deviation >= amount - mv * target,
        deviation >= mv * target - amount,
    ]
    relaxation = cp.Problem(cp.Minimize(cp.sum(deviation)), constraints)
    relaxation.solve(solver=cp.CLARABEL)
    if quantity.value is None:
        return None
    answer = dict(problem.holdings)
    answer.update({s: round(float(q)) for s, q in zip(ids, quantity.value, strict=True)})
    return answer


def cvxpy_milp(problem: RebalanceProblem, time_limit: float) -> Mapping[str, int] | None:
    """Baseline (b); None when HiGHS proves no optimum within the time limit."""
    model = {p.security_id: p for p in problem.positions}
    ids = [*model, *sorted(s for s in problem.holdings if s not in model)]
    mv = _market_value(problem)
    price = np.array([float(problem.prices[s]) for s in ids])
    target, low, high = (
        np.array([float(getattr(model[s], name)) if s in model else 0.0 for s in ids])
        for name in ("target", "low_drift", "high_drift")
    )
    quantity = cp.Variable(len(ids), integer=True)
    deviation = cp.Variable(len(ids))
    amount = cp.multiply(quantity, price)
    constraints = [
        quantity >= 0,
        amount >= mv * (target - low),
        amount <= mv * (target + high),
        deviation >= amount - mv * target,
        deviation >= mv * target - amount,
        cp.sum(amount) <= mv,
    ]
    milp = cp.Problem(cp.Minimize(cp.sum(deviation)), constraints)
    milp.solve(solver=cp.HIGHS, mip_rel_gap=0.0, time_limit=time_limit)
    if milp.status != cp.OPTIMAL or quantity.value is None:
        return None
    return {s: round(float(q)) for s, q in zip(ids, quantity.value, strict=True)}
