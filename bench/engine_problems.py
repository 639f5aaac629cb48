"""Seeded rebalance problems for the engine benchmark, and exact judges of any answer.

`judge` checks the plain problem (no policy); `audit` checks any answer against the rules of a
rebalance policy as `domain/policy.py`'s docstring states them, restated here in `Fraction`s
from those rules alone (not from the engine's or the MILP's code).
"""

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from order_generation.domain.models import Position
from order_generation.domain.policy import Policy
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


FEATURES = (
    "bands",
    "one_way",
    "min_trade",
    "round_lot",
    "round_lots",
    "reserve",
    "withdraw",
    "restrict",
    "best_effort",
)
"""The policy settings the mix draws from; `bands` and `one_way` (buy_only or sell_only) are
both the mode, so never drawn together."""


def policy_mix(seed: int, n: int, count: int) -> list[tuple[str, RebalanceProblem]]:
    """count realistic problems, each with a policy of one setting (a third of them) or two
    to four settings together; each comes with its label, the settings joined by `+`."""
    rng = random.Random(seed * 15_485_863 + n)
    mixed = []
    for i in range(count):
        positions = model(rng, n)
        prices = prices_for(rng, [p.security_id for p in positions])
        plain = portfolio(rng, positions, prices, KINDS[i % len(KINDS)])
        features = _features(rng, alone=i % 3 == 0)
        mixed.append(("+".join(features), replace(plain, policy=draw_policy(rng, plain, features))))
    return mixed


def _features(rng: random.Random, *, alone: bool) -> list[str]:
    while True:
        drawn = rng.sample(FEATURES, 1 if alone else rng.randint(2, 4))
        if not {"bands", "one_way"} <= set(drawn):
            return sorted(drawn, key=FEATURES.index)


def draw_policy(rng: random.Random, problem: RebalanceProblem, features: list[str]) -> Policy:
    """A policy with the given settings at realistic values for this portfolio; a reserve
    of up to 12% of the market value often makes the cash row bind (targets sum to
    0.85-0.95)."""
    mv = _market_value(problem)
    ids = sorted({*(p.security_id for p in problem.positions), *problem.holdings})
    fields: dict[str, Any] = {}
    if "bands" in features:
        fields["mode"] = "bands"
    if "one_way" in features:  # sell_only, where nothing is held, could only fail
        fields["mode"] = rng.choice(["buy_only", "sell_only"]) if problem.holdings else "buy_only"
    if "min_trade" in features:
        which = rng.choice(["value", "quantity", "both"])
        if which != "quantity":
            fields["min_trade_value"] = Decimal(rng.choice([500, 2_000, 10_000]))
        if which != "value":
            fields["min_trade_quantity"] = rng.choice([5, 25, 100])
    if "round_lot" in features:
        fields["round_lot"] = rng.choice([10, 100])
    if "round_lots" in features:
        picked = rng.sample(ids, max(1, len(ids) // 5))
        fields["round_lots"] = {s: rng.choice([5, 10, 50, 100]) for s in picked}
    if "reserve" in features:
        which = rng.choice(["amount", "fraction", "both"])
        if which != "fraction":
            fields["min_cash"] = (mv * Decimal(rng.uniform(0.005, 0.12))).quantize(Decimal(1))
        if which != "amount":
            fields["min_cash_fraction"] = Decimal(rng.choice(["0.01", "0.02", "0.05", "0.1"]))
    if "withdraw" in features:
        fields["withdraw"] = (mv * Decimal(rng.uniform(0.01, 0.15))).quantize(CENT)
    if "restrict" in features:
        for name in rng.sample(["no_buy", "no_sell", "hold"], rng.randint(1, 3)):
            fields[name] = frozenset(rng.sample(ids, min(len(ids), rng.randint(1, 3))))
    if "best_effort" in features:
        fields["bands"] = "best_effort"
    return Policy(**fields)


def _market_value(problem: RebalanceProblem) -> Decimal:
    held = sum((q * problem.prices[s] for s, q in problem.holdings.items()), Decimal(0))
    return problem.cash + held


@dataclass(frozen=True)
class Audit:
    """What an answer breaks under a policy, and its objective, all exact.

    `outside` is the total amount outside the bands (counted only under best-effort bands,
    where it is the first part of the objective; 0 under strict bands) and `deviation` PD.
    """

    broken: tuple[str, ...]
    outside: Fraction
    deviation: Fraction
    market_value: Fraction

    @property
    def objective(self) -> tuple[Fraction, Fraction]:
        return self.outside, self.deviation


def audit(problem: RebalanceProblem, quantities: Mapping[str, int], *, kept: bool) -> Audit:
    """Every rule of `problem.policy` that `quantities` break, with `kept` saying whether
    mode bands kept its in-band securities (False for any other mode, or when it fell back).

    With V = MV - withdraw, goal V·w, band [V·(w - l)⁺, V·(w + r)] (w = l = r = 0 for a held
    security the model lacks) and held u: u' is a whole number >= 0; sell_only, no_buy and
    hold forbid u' > u, buy_only, no_sell and hold u' < u; an order to u' other than u and 0
    is a multiple of the lot and at least min_trade_quantity shares and min_trade_value
    dollars; cash after >= withdraw + max(min_cash, min_cash_fraction·V); under strict bands
    every amount u'·p lies in its band.
    """
    policy = problem.policy
    model_ids = {p.security_id: p for p in problem.positions}
    ids = {*model_ids, *problem.holdings}
    mv = Fraction(problem.cash) + sum(
        (q * Fraction(problem.prices[s]) for s, q in problem.holdings.items()), Fraction(0)
    )
    value = mv - Fraction(policy.withdraw)
    reserve = max(Fraction(policy.min_cash), Fraction(policy.min_cash_fraction) * value)
    best_effort = policy.bands == "best_effort"
    broken: set[str] = {"unknown security"} if set(quantities) - ids else set()
    outside = deviation = Fraction(0)
    for sid in ids:
        if sid not in quantities:
            broken.add("missing security")
            continue
        u, held, price = (
            quantities[sid],
            problem.holdings.get(sid, 0),
            Fraction(problem.prices[sid]),
        )
        position = model_ids.get(sid)
        w = Fraction(position.target) if position else Fraction(0)
        low = Fraction(position.low_drift) if position else Fraction(0)
        high = Fraction(position.high_drift) if position else Fraction(0)
        floor, ceiling = value * max(w - low, Fraction(0)), value * (w + high)
        if type(u) is not int or u < 0:
            broken.add("not a whole number >= 0")
            continue
        amount = u * price
        deviation += abs(value * w - amount)
        beyond = max(Fraction(0), floor - amount, amount - ceiling)
        outside += beyond
        broken |= _refusals(policy, sid, held, u, price)
        if kept and position is not None and floor <= held * price <= ceiling and u != held:
            broken.add("bands: traded in band")
        if beyond and not best_effort:
            broken.add("band")
    cash_after = Fraction(problem.cash) - sum(
        (
            (quantities.get(s, 0) - problem.holdings.get(s, 0)) * Fraction(problem.prices[s])
            for s in ids
        ),
        Fraction(0),
    )
    if value < 0 or cash_after < Fraction(policy.withdraw) + reserve:
        broken.add("cash reserve")
    return Audit(tuple(sorted(broken)), outside if best_effort else Fraction(0), deviation, mv)


def _refusals(policy: Policy, sid: str, held: int, u: int, price: Fraction) -> set[str]:
    """The restrictions and the trade sizing, for one security going from held to u."""
    broken = set()
    if u > held and (policy.mode == "sell_only" or sid in policy.no_buy | policy.hold):
        broken.add("restriction: bought")
    if u < held and (policy.mode == "buy_only" or sid in policy.no_sell | policy.hold):
        broken.add("restriction: sold")
    size = abs(u - held)
    if u not in (held, 0):
        if size % policy.round_lots.get(sid, policy.round_lot):
            broken.add("lot")
        if size < policy.min_trade_quantity or size * price < Fraction(policy.min_trade_value):
            broken.add("minimum trade")
    return broken
