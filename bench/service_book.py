"""A generated GlobeCo book for the service benchmark: one scenario, two models that fit it.

Securities are priced log-uniformly from $3 to $3,000. A 20-position model and a
100-position model (targets summing to 0.90 and 0.95) each have their own portfolios, in
four kinds: near the model (inside its bands), far from it (random holdings, some outside the
model, lots of cash or little), cash only, and small (the smallest market values at which
every band still holds a whole share of the dearest security, so every portfolio is feasible).
"""

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from order_generation.simulator.scenario import Portfolio, Scenario, Security

OUTSIDE_SECURITIES = 30  # held by some portfolios, in no model: they must be sold


@dataclass(frozen=True)
class ModelSpec:
    """A model's shape: how many positions, their target and bands, how many portfolios."""

    name: str
    positions: int
    portfolios: int

    def bands(self, index: int) -> tuple[str, str, str]:
        """(target, low drift, high drift) of the index-th position."""
        if self.positions <= 20:
            return "0.045", "0.02", "0.02"  # 20 x 0.045 = 0.90
        if index < 90:
            return "0.01", "0.005", "0.005"  # 90 x 0.01 + 10 x 0.005 = 0.95
        return "0.005", "0.0025", "0.0025"


@dataclass(frozen=True)
class BenchBook:
    scenario: Scenario
    models: dict[str, dict[str, Any]]  # spec name -> POST /models body


def bench_book(specs: list[ModelSpec], seed: int = 11) -> BenchBook:
    """The scenario every spec's model and portfolios live in (the same seed, the same book)."""
    rng = random.Random(seed)
    widest = max(spec.positions for spec in specs)
    securities = tuple(
        Security(f"BSEC{n:020d}", f"B{n:04d}") for n in range(widest + OUTSIDE_SECURITIES)
    )
    prices: dict[str, Decimal | None] = {s.ticker: _price(rng) for s in securities}
    price_of = {s.security_id: prices[s.ticker] or Decimal(1) for s in securities}
    model_ids = [s.security_id for s in securities[:widest]]
    outside = [s.security_id for s in securities[widest:]]
    portfolios: list[Portfolio] = []
    models: dict[str, dict[str, Any]] = {}
    for m, spec in enumerate(specs):
        chosen = rng.sample(model_ids, spec.positions)
        positions = [
            dict(zip(("target", "low_drift", "high_drift"), spec.bands(i), strict=True))
            | {"security_id": security_id}
            for i, security_id in enumerate(chosen)
        ]
        targets = {p["security_id"]: Decimal(p["target"]) for p in positions}
        own = [
            _portfolio(rng, f"BP{m:02d}{n:020d}", f"{spec.name} #{n}", targets, outside, price_of)
            for n in range(spec.portfolios)
        ]
        portfolios += own
        models[spec.name] = {
            "name": spec.name,
            "positions": positions,
            "portfolios": [p.portfolio_id for p in own],
        }
    return BenchBook(Scenario(securities, prices, tuple(portfolios)), models)


def _price(rng: random.Random) -> Decimal:
    return Decimal(f"{math.exp(rng.uniform(math.log(3), math.log(3000))):.2f}")


def _portfolio(
    rng: random.Random,
    portfolio_id: str,
    name: str,
    targets: dict[str, Decimal],
    outside: list[str],
    price_of: dict[str, Decimal],
) -> Portfolio:
    kind = rng.random()
    if kind < 0.05:
        return Portfolio(portfolio_id, name, cash=Decimal(rng.randint(100_000, 5_000_000)))
    small = kind < 0.10
    value = rng.uniform(600_000, 1_200_000) if small else math.exp(rng.uniform(14, 16.8))
    if kind < 0.70:  # near the model: every position inside its band, a little off target
        weights = {s: float(w) * rng.uniform(0.8, 1.2) for s, w in targets.items()}
    else:  # far: a random part of the model at random weights, and a few securities outside it
        held = rng.sample(list(targets), rng.randint(1, len(targets)))
        held += rng.sample(outside, rng.randint(0, 5))
        scale = rng.uniform(0.3, 1.0) / len(held)
        weights = {s: scale * rng.uniform(0, 2) for s in held}
    holdings = {s: int(value * w / float(price_of[s])) for s, w in weights.items()}
    invested = sum(q * price_of[s] for s, q in holdings.items())
    cash = max(Decimal(0), Decimal(f"{value:.2f}") - invested)
    return Portfolio(
        portfolio_id, name, cash=cash, holdings={s: q for s, q in holdings.items() if q}
    )
