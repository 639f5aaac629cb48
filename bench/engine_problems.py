"""Seeded rebalance problems for the engine benchmark, and an exact judge of any answer."""

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from order_generation.domain.models import Position
from order_generation.domain.rebalance import RebalanceProblem

CENT = Decimal("0.01")
DRIFTS = [Decimal(d) for d in ("0.005", "0.01", "0.02", "0.03", "0.05")]
KINDS = ("new", "near", "far", "extra")


def security_id(i: int) -> str:
    return f"SEC{i:021d}"


def model(rng: random.Random, n: int) -> tuple[Position, ...]:
    """n positions whose targets sum to 0.85-0.95; above 100 positions the 0.005 step of the
    model rules cannot reach n targets, so those use 0.0001 steps."""
    step = Decimal("0.005") if n <= 100 else Decimal("0.0001")
    total = int(Decimal("0.95") / step)
    units = _split(rng, n, rng.randint(max(n, total * 85 // 100), total))
    return tuple(
        Position(security_id(i), k * step, *sorted(rng.sample(DRIFTS, 2)))
        for i, k in enumerate(units)
    )


def _split(rng: random.Random, n: int, total: int) -> list[int]:
    """n positive integers summing to total."""
    cuts = sorted(rng.sample(range(1, total), n - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


def prices_for(rng: random.Random, ids: list[str]) -> dict[str, Decimal]:
    """Log-uniform from $3 to $5,000, in cents."""
    return {s: _cents(math.exp(rng.uniform(math.log(3), math.log(5000)))) for s in ids}


def _cents(amount: float | Fraction) -> Decimal:
    return max(CENT, Decimal(round(amount * 100)) / 100)


def portfolio(
    rng: random.Random,
    positions: tuple[Position, ...],
    prices: Mapping[str, Decimal],
    kind: str,
) -> RebalanceProblem:
    """A new all-cash portfolio, one near its targets, one far from them, or one holding
    securities the model lacks; market values from $250k to $20M."""
    mv = Decimal(round(math.exp(rng.uniform(math.log(250_000), math.log(20_000_000)))))
    prices = dict(prices)
    holdings: dict[str, int] = {}
    if kind != "new":
        spread = (0.95, 1.05) if kind == "near" else (0.0, 2.0)
        for p in positions:
            shares = float(mv * p.target / prices[p.security_id]) * rng.uniform(*spread)
            if shares >= 1 and rng.random() < 0.9:
                holdings[p.security_id] = round(shares)
    if kind == "extra":
        for i in range(rng.randint(1, 5)):
            sid = security_id(900_000 + i)
            prices[sid] = _cents(rng.uniform(3, 500))
            holdings[sid] = rng.randint(1, 2_000)
    invested = sum((q * prices[s] for s, q in holdings.items()), Decimal(0))
    cash = max(Decimal(0), mv - invested) + (mv * Decimal(rng.randint(0, 8)) / 100).quantize(CENT)
    used = {p.security_id for p in positions} | set(holdings)
    return RebalanceProblem(positions, holdings, cash, {s: prices[s] for s in used})


def realistic(seed: int, n: int, count: int) -> list[RebalanceProblem]:
    """count problems over fresh models, prices and portfolios of every kind."""
    rng = random.Random(seed * 1_000 + n)
    problems = []
    for i in range(count):
        positions = model(rng, n)
        prices = prices_for(rng, [p.security_id for p in positions])
        problems.append(portfolio(rng, positions, prices, KINDS[i % len(KINDS)]))
    return problems


def one_model(seed: int, n: int, count: int) -> list[RebalanceProblem]:
    """count portfolios of every kind following one model at one set of prices."""
    rng = random.Random(seed * 7_919 + n)
    positions = model(rng, n)
    prices = prices_for(rng, [p.security_id for p in positions])
    return [portfolio(rng, positions, prices, KINDS[i % len(KINDS)]) for i in range(count)]


def binding(seed: int, n: int, count: int) -> list[RebalanceProblem]:
    """New portfolios where rounding every target to the nearest share overspends.

    Targets sum to exactly 0.95 and each sits k + f shares with 0.5 < f < 1, so the nearest
    quantity is the one above; every band holds it (high drift = target), and the low drift
    is the target or 60% of it.
    """
    rng = random.Random(seed * 104_729 + n)
    problems: list[RebalanceProblem] = []
    while len(problems) < count:
        candidate = _binding_candidate(rng, n)
        if _rounding_overspends(candidate):
            problems.append(candidate)
    return problems


def _binding_candidate(rng: random.Random, n: int) -> RebalanceProblem:
    step = Decimal("0.005") if n <= 100 else Decimal("0.0001")
    units = _split(rng, n, int(Decimal("0.95") / step))
    cash = Decimal(round(math.exp(rng.uniform(math.log(100_000), math.log(5_000_000)))))
    positions, prices = [], {}
    for i, k in enumerate(units):
        target = k * step
        low = rng.choice([target, (target * 6 / 10).quantize(Decimal("0.0001"))])
        positions.append(Position(security_id(i), target, low, target))
        shares = rng.randint(0, 4) + Fraction(rng.randint(51, 97), 100)
        prices[security_id(i)] = _cents(Fraction(cash) * Fraction(target) / shares)
    return RebalanceProblem(tuple(positions), {}, cash, prices)


def _rounding_overspends(problem: RebalanceProblem) -> bool:
    spend = Fraction(0)
    for p in problem.positions:
        price = Fraction(problem.prices[p.security_id])
        spend += round(Fraction(problem.cash) * Fraction(p.target) / price) * price
    return spend > Fraction(problem.cash)


@dataclass(frozen=True)
class Verdict:
    """What an answer breaks, and its PD; computed exactly from the problem."""

    broken: tuple[str, ...]
    deviation: Fraction
    market_value: Fraction


def judge(problem: RebalanceProblem, quantities: Mapping[str, int]) -> Verdict:
    """Checks bands, u >= 0, cash after >= 0 and that held securities outside the model go."""
    model_ids = {p.security_id: p for p in problem.positions}
    mv = Fraction(problem.cash) + sum(
        q * Fraction(problem.prices[s]) for s, q in problem.holdings.items()
    )
    broken: set[str] = set()
    deviation = spent = Fraction(0)
    for sid in {*model_ids, *problem.holdings}:
        u = quantities.get(sid, 0)
        amount = u * Fraction(problem.prices[sid])
        spent += amount
        position = model_ids.get(sid)
        if position is None:
            broken |= {"excluded kept"} if u else set()
            deviation += abs(amount)
            continue
        w = Fraction(position.target)
        low, high = (
            mv * (w - Fraction(position.low_drift)),
            mv * (w + Fraction(position.high_drift)),
        )
        broken |= set() if u >= 0 and low <= amount <= high else {"band"}
        deviation += abs(mv * w - amount)
    if spent > mv:
        broken.add("cash")
    return Verdict(tuple(sorted(broken)), deviation, mv)
