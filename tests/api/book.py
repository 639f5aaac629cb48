"""A seeded GlobeCo book for rebalance tests, and an independent check of the orders."""

import random
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from order_generation.domain.milp import minimise_deviation
from order_generation.simulator.scenario import Portfolio, Scenario, Security

EXPENSIVE = "EXPENSIVE000000000000000"  # $3,000 a share, held within a ±1% band


@dataclass(frozen=True)
class Book:
    scenario: Scenario
    model: dict[str, Any]

    def price(self, security_id: str) -> Decimal:
        ticker = next(s.ticker for s in self.scenario.securities if s.security_id == security_id)
        price = self.scenario.prices[ticker]
        assert price is not None
        return price

    def portfolio(self, portfolio_id: str) -> Portfolio:
        return next(p for p in self.scenario.portfolios if p.portfolio_id == portfolio_id)


def sid(n: int) -> str:
    return f"SEC{n:021d}"


def pid(n: int) -> str:
    return f"PORT{n:020d}"


def make_book(portfolios: int = 100, seed: int = 7) -> Book:
    """20 model securities plus 5 held outside the model; the last portfolio is too small."""
    rng = random.Random(seed)
    ids = [sid(n) for n in range(25)] + [EXPENSIVE]
    securities = tuple(Security(s, f"T{i:03d}") for i, s in enumerate(ids))
    prices: dict[str, Decimal | None] = {
        s.ticker: Decimal(rng.randint(500, 300_000)) / 100 for s in securities
    }
    prices[securities[-1].ticker] = Decimal(3000)
    positions = [
        {"security_id": sid(n), "target": "0.04", "low_drift": "0.02", "high_drift": "0.03"}
        for n in range(20)
    ] + [{"security_id": EXPENSIVE, "target": "0.05", "low_drift": "0.01", "high_drift": "0.01"}]
    book = [_portfolio(rng, n, ids, prices, securities) for n in range(portfolios - 4)]
    book += [
        Portfolio(pid(portfolios - 4), "new", new=True),
        Portfolio(pid(portfolios - 3), "cash only", cash=Decimal("2500000.00")),
        Portfolio(pid(portfolios - 2), None, cash=Decimal(1_000_000), holdings={sid(22): 500}),
        Portfolio(pid(portfolios - 1), "too small", cash=Decimal("10000.00")),
    ]
    model = {
        "name": f"book {seed}",
        "positions": positions,
        "portfolios": [p.portfolio_id for p in book],
    }
    scenario = Scenario(securities, prices, tuple(book))
    return Book(scenario, model)


def _portfolio(
    rng: random.Random,
    n: int,
    ids: list[str],
    prices: dict[str, Decimal | None],
    securities: tuple[Security, ...],
) -> Portfolio:
    held = rng.sample(ids[:25], rng.randint(5, 24))
    holdings = {s: rng.randint(0, 3000) for s in held}
    holdings[EXPENSIVE] = rng.randint(10, 60)
    cash = Decimal(rng.randint(0, 50_000_000)) / 100
    return Portfolio(pid(n), f"portfolio {n}", cash=cash, holdings=holdings)


def check_orders(book: Book, answer: dict[str, Any]) -> None:
    """Recompute everything from the scenario: bounds, cash, trades, and optimality."""
    portfolio = book.portfolio(answer["portfolio_id"])
    holdings = {} if portfolio.new else portfolio.holdings
    cash = Decimal(0) if portfolio.new else portfolio.cash
    market_value = cash + sum(q * book.price(s) for s, q in holdings.items())
    assert Decimal(answer["market_value"]) == market_value
    targets = {p["security_id"]: p for p in book.model["positions"]}
    universe = list(targets) + [s for s in holdings if s not in targets]
    drifts = {d["security_id"]: d for d in answer["drifts"]}
    assert set(drifts) == set(universe)

    spent, objective, lows, highs = Decimal(0), Decimal(0), [], []
    for security_id in universe:
        drift, price = drifts[security_id], book.price(security_id)
        band = targets.get(security_id, {"target": 0, "low_drift": 0, "high_drift": 0})
        target = Decimal(band["target"])
        low = market_value * (target - Decimal(band["low_drift"]))
        high = market_value * (target + Decimal(band["high_drift"]))
        quantity = Decimal(drift["adjusted_quantity"])
        assert quantity >= 0
        assert quantity == quantity.to_integral_value()
        assert low <= quantity * price <= high, security_id
        assert Decimal(drift["original_quantity"]) == holdings.get(security_id, 0)
        spent += quantity * price
        objective += abs(market_value * target - quantity * price)
        lows.append(max(0, int((low / price).to_integral_value(ROUND_CEILING))))
        highs.append(int((high / price).to_integral_value(ROUND_FLOOR)))
    assert market_value - spent >= 0
    assert Decimal(answer["cash_after_rebalance"]) == market_value - spent

    expected_trades = {
        s: int(Decimal(d["adjusted_quantity"]) - Decimal(d["original_quantity"]))
        for s, d in drifts.items()
    }
    trades = {t["security_id"]: t for t in answer["transactions"]}
    assert set(trades) == {s for s, delta in expected_trades.items() if delta}
    for security_id, trade in trades.items():
        delta = expected_trades[security_id]
        assert trade["transaction_type"] == ("BUY" if delta > 0 else "SELL")
        assert trade["quantity"] == abs(delta)

    reference = minimise_deviation(
        [book.price(s) for s in universe],
        [market_value * Decimal(targets[s]["target"] if s in targets else 0) for s in universe],
        lows,
        highs,
        market_value,
        time_limit=20,
    )
    assert float(objective) <= reference.objective * (1 + 1e-9) + 1e-6
