import time
from decimal import Decimal

import pytest

from order_generation.adapters.accounting import AccountingClient, PortfolioHoldings
from order_generation.domain.errors import UpstreamUnavailable
from tests.adapters.conftest import CASH_ONLY, HOLDER, NEW, SECURITY_IDS, fast_settings
from tests.support.simulator import SimulatorProcess

SUMMARY = f"/api/v1/portfolios/{HOLDER}/summary"


async def test_summary_strings_become_decimal_cash_and_int_quantities(accounting):
    holdings = await accounting.holdings(HOLDER)

    assert holdings == PortfolioHoldings(
        Decimal("1234.56"), {SECURITY_IDS[0]: 100, SECURITY_IDS[1]: 5}
    )
    assert isinstance(holdings.cash, Decimal)


async def test_cash_only_portfolio_has_no_holdings(accounting):
    assert await accounting.holdings(CASH_ONLY) == PortfolioHoldings(Decimal(5000), {})


async def test_unknown_portfolio_is_new_and_empty_without_retrying(accounting, globeco):
    assert await accounting.holdings(NEW) == PortfolioHoldings(Decimal(0), {})
    assert await globeco.call_count("accounting") == 1


async def test_5xx_answers_are_retried_until_one_succeeds(accounting, globeco):
    await globeco.set_faults("accounting", fail_next=2)

    assert (await accounting.holdings(HOLDER)).cash == Decimal("1234.56")
    assert await globeco.call_count("accounting", SUMMARY) == 3
    assert accounting.breaker.state == "closed"


async def test_persistent_5xx_is_unavailable_after_retries(accounting, globeco):
    await globeco.set_faults("accounting", error_rate=1)

    with pytest.raises(UpstreamUnavailable) as caught:
        await accounting.holdings(HOLDER)

    assert await globeco.call_count("accounting") == 4  # 1 try + 3 retries
    assert caught.value.details == {"service": "accounting"}
    assert "Portfolio Accounting service is unavailable: HTTP 503" in caught.value.message
    assert accounting.breaker.failures == 1  # one failed call, not four


async def test_a_hang_times_out_and_is_unavailable(globeco: SimulatorProcess):
    await globeco.set_faults("accounting", hang=True)
    settings = fast_settings(globeco, external_service_timeout=0.2, external_service_retries=1)

    started = time.monotonic()
    async with AccountingClient(settings) as client:
        with pytest.raises(UpstreamUnavailable, match="timed out after 2 attempt"):
            await client.holdings(HOLDER)

    assert 0.4 <= time.monotonic() - started < 2
    assert await globeco.call_count("accounting") == 2


async def test_a_down_service_is_unavailable_quickly(accounting, globeco):
    assert (await accounting.holdings(HOLDER)).quantities  # a pooled connection is open
    await globeco.set_faults("accounting", down=True)

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="connection refused"):
        await accounting.holdings(HOLDER)

    assert time.monotonic() - started < 1
