"""Pricing service: the close price of each ticker, cached."""

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from order_generation.adapters.resilience import GlobecoClient, TtlCache, to_decimal
from order_generation.config import Settings
from order_generation.domain.errors import NotFound


class PricingClient(GlobecoClient):
    """Prices tickers at their close; misses go through the list endpoint when that is cheaper."""

    service = "pricing"
    title = "Pricing"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.pricing_service_url, settings)
        # None stands for a price the service gave in a form that cannot be used.
        self.cache: TtlCache[str, Decimal | None] = TtlCache(settings.price_cache_seconds, "prices")

    async def prices(self, tickers: Iterable[str]) -> dict[str, Decimal]:
        """The close price (> 0) of each ticker; NotFound names every ticker without a price."""
        wanted = list(dict.fromkeys(tickers))
        found = await self.cache.get_many(wanted, self._load)
        if unpriced := [ticker for ticker in wanted if ticker not in found]:
            raise NotFound(
                f"Pricing service has no price for ticker {', '.join(unpriced)}",
                {"service": self.service, "tickers": unpriced},
            )
        prices = {
            ticker: price for ticker, price in found.items() if price is not None and price > 0
        }
        if invalid := [ticker for ticker in wanted if ticker not in prices]:
            shown = ", ".join(f"{ticker} ({found[ticker]})" for ticker in invalid)
            raise self._bad(f"gave no positive close price for ticker {shown}", tickers=invalid)
        return prices

    async def _load(self, tickers: list[str]) -> Mapping[str, Decimal | None]:
        return await self._fetch(tickers, "/api/v1/prices", _parse_list, "/api/v1/price/{}", _close)


def _parse_list(body: list[dict[str, Any]]) -> dict[str, Decimal | None]:
    latest: dict[str, dict[str, Any]] = {}
    for item in body:
        ticker = item["ticker"]
        if not isinstance(ticker, str):
            raise TypeError("ticker must be a string")
        if ticker not in latest or str(item.get("date")) > str(latest[ticker].get("date")):
            latest[ticker] = item
    return {ticker: _close(item) for ticker, item in latest.items()}


def _close(price: dict[str, Any]) -> Decimal | None:
    try:
        return to_decimal(price.get("close"))
    except (TypeError, ValueError, ArithmeticError):
        return None
