"""Portfolio Accounting service: the cash and holdings of a portfolio (its summary)."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from order_generation.adapters.resilience import GlobecoClient, to_decimal
from order_generation.config import Settings


@dataclass(frozen=True)
class PortfolioHoldings:
    """Cash and whole-share quantity per security of one portfolio."""

    cash: Decimal = Decimal(0)
    quantities: dict[str, int] = field(default_factory=dict)


class AccountingClient(GlobecoClient):
    """Reads portfolio summaries; never cached, since holdings change with every trade."""

    service = "accounting"
    title = "Portfolio Accounting"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.portfolio_accounting_service_url, settings)

    async def holdings(self, portfolio_id: str) -> PortfolioHoldings:
        """Cash and holdings of a portfolio; an unknown (new) portfolio holds nothing."""
        response = await self._get(f"/api/v1/portfolios/{quote(portfolio_id, safe='')}/summary")
        if response.status_code == 404:
            return PortfolioHoldings()
        return self._decode(response, self._parse_summary)

    def _parse_summary(self, body: dict[str, Any]) -> PortfolioHoldings:
        quantities: dict[str, int] = {}
        for position in body.get("securities") or ():
            security_id = position["securityId"]
            if security_id is None:  # a cash line, already in cashBalance
                continue
            if not isinstance(security_id, str):
                raise TypeError("securityId must be a string")
            quantity = self._whole_shares(security_id, to_decimal(position["netQuantity"]))
            quantities[security_id] = quantities.get(security_id, 0) + quantity
        cash = body.get("cashBalance")
        return PortfolioHoldings(
            cash=Decimal(0) if cash is None else to_decimal(cash),
            quantities={security_id: q for security_id, q in quantities.items() if q != 0},
        )

    def _whole_shares(self, security_id: str, quantity: Decimal) -> int:
        if quantity != quantity.to_integral_value():
            raise self._bad(
                f"reported a fractional quantity {quantity} of security {security_id}",
                security_id=security_id,
            )
        return int(quantity)
