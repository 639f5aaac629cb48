"""Every client through a seeded 50% rate of 5xx answers: retries absorb it."""

from decimal import Decimal

import pytest

from order_generation.adapters.accounting import AccountingClient
from order_generation.adapters.deadline import DeadlineExceeded, deadline
from tests.adapters.conftest import (
    CASH_ONLY,
    HOLDER,
    PRICED,
    SECURITY_IDS,
    TICKERS,
    fast_settings,
)
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


async def test_a_hung_service_answers_by_the_deadline_not_after_every_retry(
    globeco: SimulatorProcess,
):

    await globeco.set_faults("accounting", hang=True)
    slow = fast_settings(globeco, external_service_timeout=30, external_service_retries=3)
    async with AccountingClient(slow) as accounting:
        with deadline(0.5), pytest.raises(DeadlineExceeded) as raised:
            await accounting.holdings(HOLDER)
        # Cut short by the deadline, not by the service: the breaker counts no failure.
        assert (accounting.breaker.state, accounting.breaker.failures) == ("closed", 0)
    assert raised.value.status == 503
    assert raised.value.details == {"service": "accounting"}
    assert await globeco.call_count("accounting") == 1  # the one attempt that hung


async def test_no_retry_starts_whose_backoff_would_end_past_the_deadline(
    globeco: SimulatorProcess,
):

    await globeco.set_faults("accounting", fail_next=100)
    slow_backoff = fast_settings(globeco, retry_backoff_seconds=2, external_service_retries=3)
    async with AccountingClient(slow_backoff) as accounting:
        with deadline(1.0), pytest.raises(DeadlineExceeded):
            await accounting.holdings(HOLDER)
    # Backoffs of 2 s and more: the first retry would already end past the deadline.
    assert await globeco.call_count("accounting") == 1
