"""The demo book: seeded, sized as promised, and its models valid and feasible to rebalance."""

import math
from decimal import Decimal
from typing import Any

import pytest

from order_generation.domain.models import InvestmentModel, Position
from order_generation.simulator import Scenario, demo_models, demo_scenario

BOOK = demo_scenario(0)


def as_model(data: dict[str, Any]) -> InvestmentModel:
    positions = tuple(
        Position(
            p["security_id"],
            Decimal(p["target"]),
            Decimal(p["low_drift"]),
            Decimal(p["high_drift"]),
        )
        for p in data["positions"]
    )
    return InvestmentModel(data["name"], positions, tuple(data["portfolios"]))


def test_the_same_seed_gives_the_same_book_and_another_seed_another():
    assert demo_scenario(0) == BOOK
    assert demo_scenario(1) != BOOK
    assert demo_models(0) == list(BOOK.models)


def test_the_book_survives_the_scenario_file_format():
    assert Scenario.from_dict(BOOK.to_dict()) == BOOK


def test_tens_of_securities_and_portfolios_priced_from_dollars_to_thousands():
    prices = [p for p in BOOK.prices.values() if p is not None]

    assert 20 <= len(BOOK.securities) < 100
    assert 20 <= len(BOOK.portfolios) < 100
    assert len(prices) == len(BOOK.securities)
    assert min(prices) < 10
    assert max(prices) > 1000
    assert all(p.name for p in BOOK.portfolios)
    assert any(not p.holdings for p in BOOK.portfolios)  # a cash-only portfolio


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_models_obey_the_model_rules_and_know_their_securities(seed):
    book = demo_scenario(seed)
    known = {s.security_id for s in book.securities}
    portfolio_ids = {p.portfolio_id for p in book.portfolios}

    models = [as_model(m) for m in book.models]

    assert 1 <= len(models) <= 2
    assert all(p.security_id in known for m in models for p in m.positions)
    followed = [pid for m in models for pid in m.portfolios]
    assert len(followed) == len(set(followed))  # a portfolio follows at most one model
    assert set(followed) <= portfolio_ids
    assert 1 <= len(portfolio_ids - set(followed)) <= 10  # some are free for a new model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_model_weights_fit_the_portal_form_steps_of_a_hundredth(seed):
    """The portal's model form refuses e.g. 0.045 (step="0.01"), silently."""
    for model in map(as_model, demo_scenario(seed).models):
        for position in model.positions:
            for weight in (position.target, position.low_drift, position.high_drift):
                assert weight % Decimal("0.01") == 0, (model.name, position)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_model_portfolio_can_be_rebalanced_within_the_bands(seed):
    """Buying the fewest shares inside each band is feasible: in band, and cash stays >= 0."""
    book = demo_scenario(seed)
    tickers = {s.security_id: s.ticker for s in book.securities}
    portfolios = {p.portfolio_id: p for p in book.portfolios}
    for model in map(as_model, book.models):
        for portfolio in map(portfolios.__getitem__, model.portfolios):
            price = {sid: book.prices[tickers[sid]] or Decimal(1) for sid in tickers}
            value = portfolio.cash + sum(q * price[s] for s, q in portfolio.holdings.items())
            spent = Decimal(0)
            for p in model.positions:
                shares = math.ceil(value * (p.target - p.low_drift) / price[p.security_id])
                assert shares * price[p.security_id] <= value * (p.target + p.high_drift)
                spent += shares * price[p.security_id]
            assert spent <= value
