"""A seeded demo book: tens of securities and portfolios, and two models that fit them."""

import math
import random
from decimal import Decimal
from typing import Any

from order_generation.simulator.scenario import Portfolio, Scenario, Security

SECURITY_COUNT = 60
PORTFOLIO_COUNT = 34
_NAMES = ("Harbor", "Summit", "Cedar", "Beacon", "Granite", "Meadow", "Aurora", "Keystone")
_STYLES = ("Growth", "Income", "Balanced", "Value", "Horizon", "Core")
# (name, positions, target each, low drift, high drift, portfolios): targets sum to 0.90, in
# steps of 0.01 as the portal's model form takes them. The last PORTFOLIO_COUNT - 30
# portfolios follow no model, so a first user can build a model of their own in the portal.
_MODELS = (
    ("Demo Balanced", 18, "0.05", "0.02", "0.03", 18),
    ("Demo Growth", 10, "0.09", "0.03", "0.03", 12),
)


def demo_scenario(seed: int = 0) -> Scenario:
    """The demo book for `seed`; the same seed always gives the same book."""
    rng = random.Random(seed)
    securities = _securities(rng)
    prices: dict[str, Decimal | None] = {s.ticker: _price(rng) for s in securities}
    portfolios = tuple(
        _portfolio(rng, index, securities, prices) for index in range(PORTFOLIO_COUNT)
    )
    return Scenario(
        securities=securities,
        prices=prices,
        portfolios=portfolios,
        models=_models(rng, securities, portfolios),
    )


def demo_models(seed: int = 0) -> list[dict[str, Any]]:
    """The demo book's models as plain dicts: name, positions, portfolios; decimals as strings."""
    return list(demo_scenario(seed).models)


def _id(rng: random.Random) -> str:
    return f"{rng.getrandbits(96):024x}"


def _securities(rng: random.Random) -> tuple[Security, ...]:
    tickers: set[str] = set()
    while len(tickers) < SECURITY_COUNT:
        tickers.add("".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=rng.choice((3, 4)))))
    return tuple(Security(_id(rng), ticker) for ticker in sorted(tickers))


def _price(rng: random.Random) -> Decimal:
    """Log-uniform between 3 and 3,000 dollars."""
    return Decimal(f"{math.exp(rng.uniform(math.log(3), math.log(3000))):.2f}")


def _portfolio(
    rng: random.Random,
    index: int,
    securities: tuple[Security, ...],
    prices: dict[str, Decimal | None],
) -> Portfolio:
    value = rng.uniform(250_000, 5_000_000)
    held = [] if index == 0 else rng.sample(securities, rng.randint(3, 15))
    invested = value * rng.uniform(0.5, 0.95) if held else 0.0
    holdings = {
        s.security_id: max(1, round(invested / len(held) / float(prices[s.ticker] or 1)))
        for s in held
    }
    return Portfolio(
        portfolio_id=_id(rng),
        name=f"{rng.choice(_NAMES)} {rng.choice(_STYLES)} {index + 1:02d}",
        cash=Decimal(f"{value - invested:.2f}"),
        holdings=holdings,
    )


def _models(
    rng: random.Random, securities: tuple[Security, ...], portfolios: tuple[Portfolio, ...]
) -> tuple[dict[str, Any], ...]:
    models = []
    start = 0
    for name, size, target, low, high, count in _MODELS:
        positions = [
            {"security_id": s.security_id, "target": target, "low_drift": low, "high_drift": high}
            for s in rng.sample(securities, size)
        ]
        followers = [p.portfolio_id for p in portfolios[start : start + count]]
        models.append({"name": name, "positions": positions, "portfolios": followers})
        start += count
    return tuple(models)
