"""Portfolio service: portfolio names, which only decorate a rebalance result."""

from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from order_generation.adapters.resilience import GlobecoClient, TtlCache
from order_generation.config import Settings
from order_generation.domain.errors import ServiceError

log = structlog.get_logger(__name__)


class PortfolioClient(GlobecoClient):
    """Names portfolios; never fails a rebalance: an unknown name is None."""

    service = "portfolio"
    title = "Portfolio"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.portfolio_service_url, settings)
        self.cache: TtlCache[str, str] = TtlCache(
            settings.portfolio_name_cache_seconds, "portfolio_names"
        )

    async def name(self, portfolio_id: str) -> str | None:
        """The portfolio's name, or None when it is unknown or the service is unavailable."""
        return (await self.names([portfolio_id]))[portfolio_id]

    async def names(self, portfolio_ids: Iterable[str]) -> dict[str, str | None]:
        """The name of each portfolio, None where unknown or the service is unavailable."""
        wanted = list(dict.fromkeys(portfolio_ids))
        try:
            found = await self.cache.get_many(wanted, self._load)
        except ServiceError as exc:
            log.warning("portfolio_names_unavailable", service=self.service, error=exc.message)
            found = {}
        return {portfolio_id: found.get(portfolio_id) for portfolio_id in wanted}

    async def _load(self, portfolio_ids: list[str]) -> Mapping[str, str]:
        return await self._fetch(
            portfolio_ids, "/api/v1/portfolios", _parse_list, "/api/v1/portfolio/{}", _name
        )


def _parse_list(body: list[dict[str, Any]]) -> dict[str, str]:
    return {str(item["portfolioId"]): _name(item) for item in body}


def _name(portfolio: dict[str, Any]) -> str:
    name = portfolio["name"]
    if not isinstance(name, str):
        raise TypeError("name must be a string")
    return name
