import asyncio
from decimal import Decimal

import pytest

from order_generation.domain.errors import NotFound, UpstreamBadResponse
from tests.adapters.conftest import (
    NO_CLOSE,
    PRICED,
    TICKERS,
    UNPRICED,
    ZERO_PRICE,
    price_of,
)

EXPECTED = {TICKERS[security_id]: price_of(i) for i, security_id in enumerate(PRICED)}


async def test_json_number_prices_become_exact_decimals(pricing):
    tickers = [TICKERS[PRICED[7]], TICKERS[PRICED[8]]]

    prices = await pricing.prices(tickers)

    assert prices == {t: EXPECTED[t] for t in tickers}
    assert all(isinstance(p, Decimal) for p in prices.values())


async def test_100_tickers_take_one_call_and_then_none(pricing, globeco):
    tickers = list(EXPECTED)[:100]

    assert await pricing.prices(tickers) == {t: EXPECTED[t] for t in tickers}
    assert await pricing.prices(tickers) == {t: EXPECTED[t] for t in tickers}
    assert (await globeco.calls())["pricing"] == {"GET /api/v1/prices": 1}


async def test_concurrent_misses_for_one_ticker_make_one_call(pricing, globeco):
    ticker = TICKERS[PRICED[0]]

    await asyncio.gather(*(pricing.prices([ticker]) for _ in range(20)))

    assert await globeco.call_count("pricing") == 1


@pytest.mark.parametrize("security_id", [ZERO_PRICE, NO_CLOSE])
async def test_a_price_that_is_not_positive_is_a_clear_error(pricing, security_id):
    ticker = TICKERS[security_id]

    with pytest.raises(UpstreamBadResponse, match=f"no positive close price for ticker {ticker}"):
        await pricing.prices([TICKERS[PRICED[0]], ticker])


async def test_a_ticker_without_price_is_not_found(pricing, globeco):
    ticker = TICKERS[UNPRICED]

    with pytest.raises(NotFound, match=f"no price for ticker {ticker}") as caught:
        await pricing.prices([ticker])

    assert caught.value.details == {"service": "pricing", "tickers": [ticker]}
    assert await globeco.call_count("pricing") == 1


async def test_unusable_prices_in_a_batch_name_their_tickers(pricing):
    with pytest.raises(UpstreamBadResponse) as caught:
        await pricing.prices([*list(EXPECTED)[:10], TICKERS[ZERO_PRICE], TICKERS[NO_CLOSE]])

    assert caught.value.details == {
        "service": "pricing",
        "tickers": [TICKERS[ZERO_PRICE], TICKERS[NO_CLOSE]],
    }
