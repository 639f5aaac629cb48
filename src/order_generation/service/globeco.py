"""What a rebalance reads from the four GlobeCo services: holdings and names per portfolio,
tickers and prices per security."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from order_generation.adapters.accounting import AccountingClient, PortfolioHoldings
from order_generation.adapters.portfolio import PortfolioClient
from order_generation.adapters.pricing import PricingClient
from order_generation.adapters.security import SecurityClient
from order_generation.domain.models import InvestmentModel

# The name only decorates a result: a slow Portfolio service must not hold the rebalance up.
NAME_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class Globeco:
    """The four GlobeCo services the rebalance reads from."""

    accounting: AccountingClient
    security: SecurityClient
    pricing: PricingClient
    portfolio: PortfolioClient

    async def prices(
        self, security_ids: Sequence[str], tickers: dict[str, str]
    ) -> dict[str, Decimal]:
        """The price of each security, looked up by its ticker (added to `tickers`)."""
        found = await self.security.tickers(security_ids)
        by_ticker = await self.pricing.prices(found.values())
        tickers.update(found)
        return {s: by_ticker[found[s]] for s in security_ids}

    async def warm_caches(self, model: InvestmentModel, tickers: dict[str, str]) -> None:
        """One batched lookup of names, tickers and prices instead of one per portfolio."""
        await asyncio.gather(
            self.portfolio.names(model.portfolios),
            self.prices([p.security_id for p in model.positions], tickers),
        )

    async def aclose(self) -> None:
        for client in (self.accounting, self.security, self.pricing, self.portfolio):
            await client.aclose()


@dataclass(frozen=True)
class PortfolioReads:
    """A portfolio's holdings and name, being read from GlobeCo."""

    portfolio_id: str
    holdings: asyncio.Task[PortfolioHoldings]
    name: asyncio.Task[str | None]

    @classmethod
    def start(cls, globeco: Globeco, portfolio_id: str) -> "PortfolioReads":
        return cls(
            portfolio_id,
            asyncio.create_task(globeco.accounting.holdings(portfolio_id)),
            asyncio.create_task(globeco.portfolio.name(portfolio_id)),
        )

    async def name_or_none(self) -> str | None:
        """The name if it comes within NAME_WAIT_SECONDS."""
        try:
            return await asyncio.wait_for(self.name, NAME_WAIT_SECONDS)
        except TimeoutError:
            return None

    def discard(self) -> None:
        """Stop both reads; an error one of them already raised is dropped with it."""
        for task in (self.holdings, self.name):
            task.cancel()
            if task.done() and not task.cancelled():
                task.exception()
