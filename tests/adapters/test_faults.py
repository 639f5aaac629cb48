"""Every client through a seeded 50% rate of 5xx answers: retries absorb it."""

from decimal import Decimal

from tests.adapters.conftest import CASH_ONLY, HOLDER, PRICED, SECURITY_IDS, TICKERS
from tests.support.simulator import SimulatorProcess

SERVICES = ("accounting", "security", "pricing", "portfolio")


async def test_half_of_all_answers_5xx_still_succeeds(
    globeco: SimulatorProcess, accounting, security, pricing, portfolio
):
    for service in SERVICES:
        await globeco.set_faults(service, error_rate=0.5, seed=7)

    holdings = await accounting.holdings(HOLDER)
    tickers = await security.tickers(SECURITY_IDS[:100])
    prices = await pricing.prices(TICKERS[i] for i in PRICED[:100])
    name = await portfolio.name(CASH_ONLY)

    assert (holdings.cash, len(tickers), len(prices)) == (Decimal("1234.56"), 100, 100)
    assert name == "Cash Fund"
    calls = await globeco.calls()
    assert all(sum(calls[service].values()) > 1 for service in SERVICES)  # each one retried
